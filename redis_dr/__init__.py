"""redis-dr: Redis backup, restore and disaster recovery."""

__version__ = "0.1.0"
