"""The `redis-dr` command line: a thin entry point over the flows and the core."""
