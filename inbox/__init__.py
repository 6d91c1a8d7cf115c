"""Inbox: a multichannel support inbox daemon."""

__version__ = "0.1.0"
