"""Thin handlers, one module per resource family: parse, call control, shape the reply."""
