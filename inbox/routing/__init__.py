"""Routing: what turns the rules engine's decisions, and a person's, into writes in the store
(tags, priority, status, assignee, events with their reasons, outbox rows for the pings).

The engine (rules/) decides and never writes; this room writes and never decides what a rule
means. Imports the store and the engine below it; the pipeline and the CLI call it."""
