"""Measure replication-stream snapshot throughput on loopback (no timed assertions).

Usage: python benchmarks/stream_snapshot.py [MEGABYTES]
Loads MEGABYTES of random 1 KiB values (pipelined SETs) into a throwaway
redis-server, then streams a snapshot with `rdbcompression no` and with the
defaults, consuming the chunks without storing them.
"""

from __future__ import annotations

import os
import sys
import time

from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.replication import replication_snapshot
from redis_dr.sandbox.redis_server import RedisServer


def load(server: RedisServer, megabytes: int) -> None:
    client = server.client()
    keys = megabytes * 1024
    for start in range(0, keys, 2000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 2000, keys)):
            pipe.set(f"session:{i:08d}", os.urandom(1024))
        pipe.execute()


def measure(server: RedisServer) -> tuple[int, float, str]:
    client = open_client(RedisEndpoint.from_url(server.url, env={}))
    started = time.perf_counter()
    total = 0
    with replication_snapshot(client) as stream:
        for chunk in stream:
            total += len(chunk)
    return total, time.perf_counter() - started, stream.payload_format


def main() -> None:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    config = {"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "0"}
    with RedisServer(config) as server:
        load(server, megabytes)
        for compression in ("no", "yes", "no", "yes"):
            server.client().config_set("rdbcompression", compression)
            size, seconds, fmt = measure(server)
            print(
                f"rdbcompression {compression:3}  {fmt:8}  {size / 1e6:7.1f} MB in {seconds:5.2f} s"
                f"  = {size / 1e6 / seconds:6.1f} MB/s"
            )
        for compression in ("no", "yes"):
            server.client().config_set("rdbcompression", compression)
            server.client().config_set("repl-diskless-sync", "no")
            size, seconds, fmt = measure(server)
            print(
                f"rdbcompression {compression:3}  {fmt:8}  {size / 1e6:7.1f} MB in {seconds:5.2f} s"
                f"  = {size / 1e6 / seconds:6.1f} MB/s"
            )


if __name__ == "__main__":
    main()
