"""Control-plane use cases: functions, versions, aliases, layers, code preparation."""
