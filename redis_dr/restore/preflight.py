"""Preflight: look at the backup and the target before touching anything, and write the plan.

Every fact here is read, never changed: the target's version, role, replicas,
Sentinels, persistence settings, free space and owner. What would lose data is a
refusal; what a person should know is a warning. See REDIS_FACTS, "Restoring".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import redis

from redis_dr.errors import AccessDeniedError, TransientError, UnsupportedError
from redis_dr.platforms.base import WORK_DIR, DataLayout, Platform, ServerState, aside_dir, staging_dir
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.errors import translate
from redis_dr.redis.info import ServerFacts, max_rdb_version, read_server_facts
from redis_dr.restore.placement import Placement, plan_placement
from redis_dr.restore.plan import BackupSummary, Check, RestorePlan, TargetSummary, Verdict
from redis_dr.restore.request import RestoreRequest, RestoreStrategy
from redis_dr.restore.source import BackupSource
from redis_dr.units import human_size

#: Free space kept beyond what the restore stages: the server needs room for its next save.
_SPARE_FRACTION = 0.10


@dataclass
class TargetFacts:
    """What preflight learned about the target without changing it."""

    description: str
    state: ServerState
    facts: ServerFacts | None = None
    unreachable: str | None = None  # why INFO could not be read
    sentinels: list[str] = field(default_factory=list)
    sentinels_unknown: str | None = None
    layout: DataLayout | None = None
    free_bytes: int | None = None
    owner: tuple[int, int] | None = None
    binary_version: str | None = None
    #: What earlier restores left under WORK_DIR (None: not known).
    leftovers: list[str] | None = None

    @property
    def redis_version(self) -> str | None:
        """From INFO if it answered, else from the platform's binary."""
        return self.facts.redis_version if self.facts else self.binary_version


def inspect_target(platform: Platform | None, endpoint: RedisEndpoint | None) -> TargetFacts:
    """Read the target's facts. A wrong password is an error at once; a server that does
    not answer is a fact (it may be down: that is often why one restores)."""
    if platform is not None:
        target = TargetFacts(
            description=platform.describe(),
            state=platform.state(),
        )
        if target.state is not ServerState.ABSENT:
            target.layout = platform.layout()
            target.free_bytes = platform.free_bytes()
            target.owner = platform.owner()
            target.binary_version = platform.server_binary_version()
            target.leftovers = platform.work_entries()
    else:
        target = TargetFacts(description=f"live server {endpoint}", state=ServerState.RUNNING)
    if endpoint is None or target.state is not ServerState.RUNNING:
        target.unreachable = "no address known" if endpoint is None else "not running"
        return target
    client = open_client(endpoint)
    try:
        target.facts = read_server_facts(client)
        target.sentinels, target.sentinels_unknown = _sentinels(client, endpoint)
    except AccessDeniedError:
        raise
    except TransientError as exc:
        target.unreachable = str(exc)
    finally:
        client.close()
    return target


def _sentinels(client: redis.Redis, endpoint: RedisEndpoint) -> tuple[list[str], str | None]:
    """Names of Sentinel connections (`sentinel-<id>-cmd`) in CLIENT LIST, or why it cannot tell."""
    try:
        raw = client.execute_command("CLIENT", "LIST")  # type: ignore[no-untyped-call]
    except redis.ResponseError as exc:
        return [], f"CLIENT LIST refused ({str(exc).split()[0]})"
    except Exception as exc:
        raise translate(exc, endpoint, "CLIENT LIST") from None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    names = []
    for line in text.splitlines():
        for item in line.split():
            if item.startswith("name=sentinel-"):
                names.append(item.removeprefix("name="))
    return sorted(set(names)), None


def make_plan(
    request: RestoreRequest,
    source: BackupSource,
    target: TargetFacts,
    *,
    tag: str,
    now: datetime,
    have_identity: bool,
) -> tuple[RestorePlan, Placement | None]:
    """The plan, with every check; the placement when the strategy is file and it is possible."""
    manifest = source.manifest
    strategy = request.effective_strategy
    checks: list[Check] = []
    placement: Placement | None = None

    encrypted = any(stored.encrypted_to for stored in manifest.files)
    if encrypted and not have_identity:
        checks.append(
            Check(
                name="decryption",
                verdict=Verdict.REFUSE,
                detail="the backup is encrypted and no age identity is set "
                "(REDIS_DR_AGE_IDENTITY or a Prefect Secret block)",
            )
        )
    checks.append(_state_check(target, strategy))
    checks.append(_version_check(manifest.source.rdb_version, target))
    if target.facts is not None:
        checks += _topology_checks(target, strategy, request.allow_sentinel)
    elif target.sentinels_unknown is None and target.unreachable:
        checks.append(
            Check(
                name="topology",
                verdict=Verdict.WARN,
                detail=f"cannot read the role or Sentinels ({target.unreachable})",
            )
        )
    if target.sentinels_unknown:
        checks.append(
            Check(
                name="sentinel",
                verdict=Verdict.WARN,
                detail=f"cannot tell whether Sentinel watches it: {target.sentinels_unknown}",
            )
        )
    if strategy is RestoreStrategy.FILE and target.layout is not None:
        try:
            placement = plan_placement(manifest, target.layout)
        except UnsupportedError as exc:
            checks.append(Check(name="persistence", verdict=Verdict.REFUSE, detail=str(exc)))
        else:
            checks.append(Check(name="persistence", verdict=Verdict.OK, detail=f"placed {placement.how}"))
            checks.append(_space_check(placement.size, target.free_bytes, target.layout.dir))
    if target.leftovers and target.layout is not None:
        checks.append(_leftovers_check(target.leftovers, target.layout.dir))
    checkpoint, checkpoint_check = _checkpoint_check(request, target, strategy, tag)
    checks.append(checkpoint_check)
    plan = RestorePlan(
        tag=tag,
        instance=request.instance,
        strategy=strategy.value,
        backup=BackupSummary(
            id=manifest.id,
            where=source.where,
            kind=manifest.kind.value,
            created_at=manifest.created_at,
            age_seconds=max(0.0, (now - manifest.completed_at).total_seconds()),
            raw_size=manifest.raw_size,
            stored_size=manifest.stored_size,
            rdb_version=manifest.source.rdb_version,
            redis_version=manifest.source.redis_version,
            keyspace=dict(manifest.source.rdb_keyspace or manifest.source.keyspace),
            labels=dict(manifest.labels),
            encrypted=encrypted,
        ),
        target=_summary(request, target),
        checks=checks,
        steps=_steps(request, strategy, placement, checkpoint, tag, target),
        checkpoint=checkpoint,
    )
    return plan, placement


def _summary(request: RestoreRequest, target: TargetFacts) -> TargetSummary:
    facts, layout = target.facts, target.layout
    return TargetSummary(
        name=request.target or "",
        description=target.description,
        state=target.state.value
        if not target.unreachable or target.state is not ServerState.RUNNING
        else "running, not answering",
        reachable=facts is not None,
        redis_version=target.redis_version,
        role=facts.role if facts else None,
        max_rdb_version=_max_rdb(target),
        data_dir=layout.dir if layout else None,
        appendonly=layout.appendonly if layout else (facts.aof_enabled if facts else None),
        free_bytes=target.free_bytes,
        owner=f"{target.owner[0]}:{target.owner[1]}" if target.owner else None,
        keyspace=dict(facts.keyspace) if facts else {},
    )


def _max_rdb(target: TargetFacts) -> int | None:
    version = target.redis_version
    return max_rdb_version(version) if version else None


def _state_check(target: TargetFacts, strategy: RestoreStrategy) -> Check:
    if target.state is ServerState.ABSENT:
        return Check(name="target", verdict=Verdict.REFUSE, detail=f"{target.description} does not exist")
    if strategy is RestoreStrategy.REPLAY:
        if target.facts is None:
            return Check(
                name="target",
                verdict=Verdict.REFUSE,
                detail=f"replay writes into a running server, and it does not answer "
                f"({target.unreachable}): start it, or use the file strategy",
            )
        return Check(name="target", verdict=Verdict.OK, detail="answers; keys are written live, no restart")
    if target.state is ServerState.STOPPED:
        return Check(
            name="target", verdict=Verdict.WARN, detail="not running: it is started with the backup's data"
        )
    if target.facts is None:
        return Check(
            name="target",
            verdict=Verdict.WARN,
            detail=f"runs but does not answer ({target.unreachable}): stopped by its platform",
        )
    if target.facts.loading:
        return Check(name="target", verdict=Verdict.WARN, detail="is loading its dataset right now")
    return Check(name="target", verdict=Verdict.OK, detail="answers; it is stopped without saving")


def _version_check(rdb_version: int | None, target: TargetFacts) -> Check:
    newest = _max_rdb(target)
    if rdb_version is None or newest is None:
        return Check(
            name="RDB version",
            verdict=Verdict.WARN,
            detail=f"cannot compare (backup RDB v{rdb_version or '?'}, target Redis "
            f"{target.redis_version or 'unknown'}): a file it cannot load is rolled back",
        )
    if rdb_version > newest:
        return Check(
            name="RDB version",
            verdict=Verdict.REFUSE,
            detail=f"the backup is RDB v{rdb_version} and the target's Redis "
            f"{target.redis_version} reads RDB v{newest} at most: upgrade the target "
            "or restore into a newer Redis",
        )
    return Check(
        name="RDB version",
        verdict=Verdict.OK,
        detail=f"backup RDB v{rdb_version}, target Redis {target.redis_version} reads up to v{newest}",
    )


def _topology_checks(target: TargetFacts, strategy: RestoreStrategy, allow_sentinel: bool) -> list[Check]:
    facts = target.facts
    assert facts is not None
    checks: list[Check] = []
    if facts.role != "master":
        where = f" of {facts.master_host}" if facts.master_host else ""
        checks.append(
            Check(
                name="role",
                verdict=Verdict.REFUSE,
                detail=f"the target is a replica{where}: its next resync would undo the restore; "
                "restore its master instead",
            )
        )
    elif facts.connected_replicas:
        checks.append(
            Check(
                name="role",
                verdict=Verdict.WARN,
                detail=f"master with {facts.connected_replicas} replica(s): they resync a full "
                "copy of the restored data afterwards",
            )
        )
    else:
        checks.append(Check(name="role", verdict=Verdict.OK, detail="master without replicas"))
    if target.sentinels:
        watched = f"Sentinel watches this master ({len(target.sentinels) // 2 or 1} sentinel(s))"
        if strategy is RestoreStrategy.REPLAY:
            checks.append(
                Check(
                    name="sentinel",
                    verdict=Verdict.OK,
                    detail=f"{watched}; replay does not stop it, so no failover",
                )
            )
        elif allow_sentinel:
            checks.append(
                Check(
                    name="sentinel",
                    verdict=Verdict.WARN,
                    detail=f"{watched}; going on as asked: a failover during the stop can "
                    "promote a replica with the old data",
                )
            )
        else:
            checks.append(
                Check(
                    name="sentinel",
                    verdict=Verdict.REFUSE,
                    detail=f"{watched}: stopping it can promote a replica that still has the old "
                    "data and then wipes the restore; use --strategy replay, or pause "
                    "failover and pass --allow-sentinel",
                )
            )
    return checks


def _space_check(needed: int, free: int | None, directory: str) -> Check:
    if free is None:
        return Check(
            name="disk space",
            verdict=Verdict.WARN,
            detail=f"cannot tell the free space in {directory}; {human_size(needed)} are needed",
        )
    if free < needed:
        return Check(
            name="disk space",
            verdict=Verdict.REFUSE,
            detail=f"{human_size(needed)} needed in {directory}, {human_size(free)} free "
            "(the previous files are kept, not deleted): free space first",
        )
    if free < needed * (1 + _SPARE_FRACTION) + needed:
        return Check(
            name="disk space",
            verdict=Verdict.WARN,
            detail=f"{human_size(needed)} needed, {human_size(free)} free in {directory}: "
            "little room left for the server's next save",
        )
    return Check(
        name="disk space",
        verdict=Verdict.OK,
        detail=f"{human_size(needed)} needed, {human_size(free)} free in {directory}",
    )


def _leftovers_check(names: list[str], directory: str) -> Check:
    """Earlier restores' aside copies (their previous data) and interrupted stagings, named."""
    aside = [name for name in names if name.startswith("aside-")]
    staging = [name for name in names if name.startswith("staging-") or name.startswith("incoming-")]
    parts = []
    if aside:
        parts.append(
            f"{len(aside)} earlier restore(s) kept the data they replaced ({', '.join(aside[-3:])}): "
            "look there first if the target was restored wrongly, remove them when no longer needed"
        )
    if staging:
        parts.append(
            f"{len(staging)} interrupted restore(s) left staged files ({', '.join(staging[-3:])}): "
            "safe to remove"
        )
    detail = "; ".join(parts) or f"entries from earlier runs: {', '.join(names[:3])}"
    return Check(name="earlier restores", verdict=Verdict.WARN, detail=f"in {directory}/{WORK_DIR}: {detail}")


def _checkpoint_check(
    request: RestoreRequest, target: TargetFacts, strategy: RestoreStrategy, tag: str
) -> tuple[bool, Check]:
    aside = f"{target.layout.dir}/{aside_dir(tag)}" if target.layout else None
    kept = f"; the previous files are kept in {aside}" if strategy is RestoreStrategy.FILE and aside else ""
    if not request.checkpoint:
        verdict = Verdict.OK if kept else Verdict.WARN
        return False, Check(name="checkpoint", verdict=verdict, detail=f"skipped as asked{kept}")
    if not request.storage:
        return False, Check(
            name="checkpoint",
            verdict=Verdict.WARN,
            detail=f"no storage location to hold it (give --storage){kept}",
        )
    if target.facts is None:
        verdict = Verdict.WARN if strategy is RestoreStrategy.FILE else Verdict.REFUSE
        return False, Check(
            name="checkpoint",
            verdict=verdict,
            detail=f"cannot back up the current data: the server does not answer{kept}",
        )
    return True, Check(
        name="checkpoint",
        verdict=Verdict.OK,
        detail=f"the current data is backed up first, labelled pre-restore{kept}",
    )


def _steps(
    request: RestoreRequest,
    strategy: RestoreStrategy,
    placement: Placement | None,
    checkpoint: bool,
    tag: str,
    target: TargetFacts,
) -> list[str]:
    steps = []
    if checkpoint:
        steps.append("back up the target's current data (label pre-restore) and commit it")
    if strategy is RestoreStrategy.REPLAY:
        scope = f"keys matching {request.match!r}" if request.match else "all keys"
        dbs = f"database {request.db}" if request.db is not None else "every database"
        steps.append("load the backup into a throwaway local redis-server")
        if request.flush:
            steps.append(f"delete the target's {scope} in {dbs}")
        mode = "keeping keys it already has" if request.keep_existing else "replacing keys it already has"
        steps.append(f"write {scope} of {dbs} into the live target with their expiry, {mode}")
        steps.append("verify: counts, sampled keys against the throwaway server, a test write")
        return steps
    names = ", ".join(placement.swap) if placement else "its data files"
    data_dir = target.layout.dir if target.layout else "the data directory"
    steps += [
        f"stage the backup in {data_dir}/{staging_dir(tag)}/ (every byte checked; the target keeps running)",
        "stop the target without saving (restart policy held off)",
        f"move {names} aside to {aside_dir(tag)}/ and the staged files in (renames only)",
        "start the target and wait until it has loaded (loading:0)",
        "verify: counts against the backup, a test write, persistence; any failure after the stop puts "
        "the previous files back and starts the target again",
    ]
    return steps


def explain_refusal(plan: RestorePlan) -> str:
    """One line for a refused plan: the first refusal, and how many more."""
    first = plan.refusals[0]
    more = f" (and {len(plan.refusals) - 1} more: see the plan)" if len(plan.refusals) > 1 else ""
    return f"restore refused before touching the target: {first.name}: {first.detail}{more}"
