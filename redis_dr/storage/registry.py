"""Choosing a storage backend by URL scheme (SDKs are imported only when needed)."""

from __future__ import annotations

from redis_dr.errors import ConfigError
from redis_dr.storage.base import Storage
from redis_dr.storage.location import StorageLocation, parse_size, redact_url

__all__ = ["open_storage", "redact_url"]


def open_storage(url: str, *, part_size: int | None = None, page_size: int | None = None) -> Storage:
    """Open the backend for url. Keyword arguments override the URL's options.

    Raises ConfigError (one line) for unknown schemes and malformed URLs.
    """
    loc = StorageLocation.parse(url)
    opts = loc.options
    part_size = part_size or parse_size(opts.get("part_size", "16MiB"), "part_size")
    page_size = page_size or parse_size(opts.get("page_size", "1000"), "page_size")
    if loc.scheme == "file":
        from redis_dr.storage.file import FileStorage

        return FileStorage(loc.bucket_or_path)
    if loc.scheme == "s3":
        from redis_dr.storage.s3 import S3Storage

        return S3Storage(
            loc.bucket_or_path,
            loc.prefix,
            region=opts.get("region"),
            endpoint=opts.get("endpoint"),
            storage_class=opts.get("storage_class"),
            profile=opts.get("profile"),
            part_size=part_size,
            page_size=page_size,
        )
    if loc.scheme == "gs":
        from redis_dr.storage.gcs import GCSStorage

        return GCSStorage(
            loc.bucket_or_path,
            loc.prefix,
            endpoint=opts.get("endpoint"),
            project=opts.get("project"),
            storage_class=opts.get("storage_class"),
            part_size=part_size,
            page_size=page_size,
        )
    raise ConfigError(f"unsupported storage URL {redact_url(url)}")  # parse() already refuses
