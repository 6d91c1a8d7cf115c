"""What leaves after the commit: outbox rows sent to Slack (pings), paced per channel; the
place replies will leave from. Reads and marks outbox rows in the store; never routes."""
