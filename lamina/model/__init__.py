"""Pure domain values: no I/O, no wire names."""
