"""Logs, metrics and request-id context."""
