"""The Lambda Runtime API (2018-06-01) that code inside a sandbox calls."""
