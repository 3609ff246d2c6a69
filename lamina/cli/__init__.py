"""The `lamina` command: an HTTP client of the server (plus `serve`, which runs it)."""
