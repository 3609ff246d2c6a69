"""The asynchronous path: a durable event queue and the worker that drains it."""
