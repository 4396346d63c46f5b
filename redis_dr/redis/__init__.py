"""Talking to Redis: endpoints, INFO, snapshots (replication stream or BGSAVE), RDB headers.

Nothing here imports Prefect. Every error leaving this package is a `RedisDRError`.
"""
