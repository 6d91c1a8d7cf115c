"""The agents' web desk (served by the daemon at /desk): the queue, a conversation's history
and actions, by the same writers as the CLI and the Slack buttons."""
