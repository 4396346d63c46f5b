"""Storage backends behind one contract, chosen by URL."""

from redis_dr.storage.base import ObjectInfo, Storage
from redis_dr.storage.registry import open_storage

__all__ = ["ObjectInfo", "Storage", "open_storage"]
