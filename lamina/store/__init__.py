"""Persistence behind the Store protocol: SQL (SQLite by default), blobs, sealing of secrets."""
