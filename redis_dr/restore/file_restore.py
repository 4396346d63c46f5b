"""The file strategy: stage while the target runs, then stop, swap, start, verify, or roll back.

Staging writes the backup into the target's data directory under our work
directory, every byte checked against the manifest, while the server still
serves: a corrupt object or a wrong key fails here, with the target untouched.
The downtime is then only stop + renames + load. Any failure after the stop
swaps the previous files back and starts the target again.

As the backup's RDB streams into staging, the scanner samples keys from it
(name, type, expiry): verification then looks them up on the restored server,
at no extra read of the backup.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from redis_dr.errors import ConfigError, IntegrityError, PermanentError, RedisDRError, TransientError
from redis_dr.manifest import BackupKind, Manifest, StoredFile
from redis_dr.platforms.base import Platform, ServerState, Swap, aside_dir
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.info import ServerFacts, read_server_facts
from redis_dr.redis.rdb_scan import RdbCounter
from redis_dr.restore.placement import Placement
from redis_dr.restore.source import BackupSource
from redis_dr.restore.verify import KeySample

#: How long a stop, a start and a load may take before the restore gives up (and rolls back).
STOP_TIMEOUT = 60.0
START_TIMEOUT = 60.0
LOAD_TIMEOUT = 1800.0
_POLL = 0.05
#: Keys sampled from the backup's RDB while it is staged (and the first key of each database).
SAMPLE_KEYS = 100
_AOF_BASE = re.compile(r"\.base\.(rdb|aof)$")
_AOF_INCR = re.compile(r"\.incr\.aof$")


class RollbackFailedError(PermanentError):
    """The restore failed after the stop and putting the previous files back failed too."""

    exit_code = 70


class RestoreFailedError(PermanentError):
    """The restore failed after the stop; the target was rolled back and runs its previous data."""


def stage(
    platform: Platform,
    source: BackupSource,
    placement: Placement,
    tag: str,
    identities: list[Any],
    *,
    sample_keys: int = SAMPLE_KEYS,
) -> KeySample:
    """Write every file of the placement into the staging directory; nothing staged is left on failure.

    Returns the keys sampled from the backup's RDB on the way (for an AOF backup, from
    its base file when that is an RDB), or why there are none.
    """
    sampled, sample = sampled_file(source.manifest)
    counter: RdbCounter | None = None
    try:
        for name, stored in placement.files.items():
            chunks: Iterator[bytes] = source.read(stored, identities)
            if stored == sampled:
                counter = RdbCounter(sample=sample_keys, size=stored.raw_size)
                chunks = counter.tap(chunks)
            platform.stage_file(tag, name, chunks, stored.raw_size)
        for name, data in placement.generated.items():
            platform.stage_file(tag, name, [data], len(data))
    except BaseException:
        platform.discard_staging(tag)
        raise
    if counter is not None:
        sample = sample_of(counter, sampled, sample)
    return sample


def sampled_file(manifest: Manifest) -> tuple[StoredFile | None, KeySample]:
    """The backup file to sample keys from, and the sample as far as the manifest tells."""
    if manifest.kind is not BackupKind.AOF:
        return manifest.files[0], KeySample()
    bases = [stored for stored in manifest.files if _AOF_BASE.search(stored.original_name or stored.name)]
    incr = sum(
        stored.raw_size for stored in manifest.files if _AOF_INCR.search(stored.original_name or stored.name)
    )
    later = f"the AOF's incr files ({incr} bytes of commands) apply after the base the keys come from"
    if not bases:
        return None, KeySample(missing="no keys sampled: the AOF backup has no base file")
    base = bases[0]
    if (base.original_name or base.name).endswith(".aof"):
        return None, KeySample(
            missing=f"no keys sampled: the AOF backup's base file {base.original_name or base.name} holds "
            "commands, not an RDB (aof-use-rdb-preamble no)"
        )
    return base, KeySample(later_writes=later if incr else None)


def sample_of(counter: RdbCounter, stored: StoredFile | None, sample: KeySample) -> KeySample:
    """The sample the scan took, saying so when the scan did not read the whole RDB."""
    keys = counter.samples()
    missing = None
    if not counter.complete:
        name = stored.original_name or stored.name if stored else "the backup"
        if counter.rdb_version is None:
            missing = f"no keys sampled: {name} is not an RDB ({counter.unknown_reason})"
        elif keys:
            missing = f"keys sampled from the start of {name} only: {counter.unknown_reason}"
        else:
            missing = f"no keys sampled from {name}: {counter.unknown_reason}"
    return sample.model_copy(update={"sampled": keys, "missing": missing})


def wait_loaded(
    platform: Platform | None, endpoint: RedisEndpoint, timeout: float = LOAD_TIMEOUT
) -> ServerFacts:
    """Wait until the server answers with `loading:0`; IntegrityError with its log when it exits first."""
    deadline = time.monotonic() + timeout
    last_problem = "no answer yet"
    while True:
        if platform is not None and platform.state() is not ServerState.RUNNING:
            reason = platform.exit_reason() or "it exited without saying why"
            raise IntegrityError(f"the target stopped while starting: {reason}")
        client = open_client(endpoint, connect_timeout=2.0, socket_timeout=10.0)
        try:
            facts = read_server_facts(client)
            if not facts.loading:
                return facts
            last_problem = "still loading"
        except redis.BusyLoadingError:
            last_problem = "still loading"
        except TransientError as exc:
            last_problem = str(exc)
        except ConfigError as exc:
            if endpoint.scheme != "unix":
                raise
            last_problem = str(exc)  # a starting server creates its socket a moment after it runs
        except RedisDRError as exc:
            if "LOADING" not in str(exc):
                raise
            last_problem = "still loading"
        finally:
            client.close()
        if time.monotonic() > deadline:
            raise TransientError(f"the target did not finish loading within {timeout:.0f} s ({last_problem})")
        time.sleep(_POLL)


def swap_and_start(
    platform: Platform,
    placement: Placement,
    tag: str,
    endpoint: RedisEndpoint,
    *,
    check: Callable[[ServerFacts], None],
    on_phase: Callable[[str], None] = lambda phase: None,
) -> Swap:
    """Stop, swap the staged files in, start, wait for the load, run `check` on the result.

    Any failure from the stop on (an interrupt too) puts the previous files back
    and starts the target again, then raises RestoreFailedError naming the cause.
    Returns what was moved aside and placed.
    """
    was_running = platform.state() is ServerState.RUNNING
    swap: Swap | None = None
    on_phase("stop")
    platform.stop(STOP_TIMEOUT)
    try:
        on_phase("place")
        swap = platform.swap_in(tag, placement.swap)
        on_phase("load")
        platform.start(START_TIMEOUT)
        facts = wait_loaded(platform, endpoint)
        on_phase("verify")
        check(facts)
        return swap
    except BaseException as exc:
        rolled_back = _roll_back(platform, swap, endpoint, restart=was_running)
        cause = str(exc) if isinstance(exc, RedisDRError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, Exception):
            raise  # Ctrl-C, SIGTERM (Prefect's TerminationSignal): rolled back, now let it end the run
        raise RestoreFailedError(
            f"the restore failed after the target was stopped ({cause}); {rolled_back}"
        ) from exc


def _roll_back(platform: Platform, swap: Swap | None, endpoint: RedisEndpoint, *, restart: bool) -> str:
    """Put the previous files back and start the target; say what state it is in."""
    try:
        if platform.state() is ServerState.RUNNING:
            platform.stop(STOP_TIMEOUT)
        if swap is not None:
            platform.swap_back(swap)
        if restart:
            platform.start(START_TIMEOUT)
            wait_loaded(platform, endpoint)
    except BaseException as exc:
        if swap is not None and swap.moved_aside:
            where = f"the previous files are in {aside_dir(swap.tag)}"
        else:
            where = "no previous file was moved aside"
        raise RollbackFailedError(
            f"ROLLBACK FAILED: {exc}; {where} in the data directory: put them back by hand and start "
            "the target"
        ) from exc
    if restart:
        return "rolled back: the target runs with its previous data"
    return "rolled back: the previous files are back and the target is stopped, as it was"
