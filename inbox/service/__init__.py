"""The running process: the daemon's loop over connectors, its web server (webhooks,
/healthz, /metrics), systemd's notify protocol, and finding connectors through entry points."""
