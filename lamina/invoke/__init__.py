"""The data plane, in call order: router, throttle, placement, pool, environment, sync."""
