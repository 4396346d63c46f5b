"""The drill plan: what is killed, which backup comes back, how old it is, how, and the target time.

Shown (terminal, run log, artifact) before anything is killed. It is built from the
restore's own preflight of the running target, so that a restore that would be
refused (a backup the target's Redis cannot read, too little disk, a replica, a
watched master) refuses the drill before the kill, not after it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from redis_dr.drill.history import history_prefix
from redis_dr.drill.measure import format_seconds
from redis_dr.drill.request import DrillRequest
from redis_dr.manifest import as_utc
from redis_dr.restore.plan import Check, RestorePlan, check_and_step_lines
from redis_dr.restore.request import RestoreRequest, RestoreStrategy, build_restore_request
from redis_dr.storage.location import redact_url
from redis_dr.units import human_size


class DrillPlan(BaseModel):
    """What the drill will do, as a person approves it."""

    tag: str
    instance: str
    environment: str | None
    target: str
    target_state: str
    strategy: str
    backup_id: str
    backup_where: str
    backup_created_at: datetime
    backup_age_seconds: float
    backup_keys: int
    backup_raw_size: int
    rto_target_seconds: float
    history: str
    checks: list[Check]
    steps: list[str]

    @property
    def refusals(self) -> list[Check]:
        """The restore's refusals: the drill does not start."""
        return [check for check in self.checks if check.verdict.value == "refuse"]

    def lines(self) -> list[str]:
        """The plan as plain text lines."""
        lines = [
            f"drill plan {self.tag} of {self.instance}"
            + (f" ({self.environment})" if self.environment else ""),
            f"  KILL:     {self.target} ({self.target_state}), with SIGKILL: no save, no clean shutdown",
            f"  restore:  backup {self.backup_id}, taken {format_seconds(self.backup_age_seconds)} ago "
            f"({self.backup_keys} keys, {human_size(self.backup_raw_size)}), from {self.backup_where}",
            f"  strategy: {self.strategy}; RTO target {format_seconds(self.rto_target_seconds)} "
            "(from the kill to a verified, writable server)",
            f"  history:  {self.history}",
        ]
        return lines + check_and_step_lines(self.checks, self.steps)

    def markdown(self) -> str:
        """The plan as Markdown (the artifact)."""
        head = "\n".join(f"    {line}" for line in self.lines()[:5])
        rows = "\n".join(f"| {c.verdict.value} | {c.name} | {c.detail} |" for c in self.checks)
        steps = "\n".join(f"{number}. {step}" for number, step in enumerate(self.steps, start=1))
        return f"{head}\n\n| verdict | check | detail |\n|---|---|---|\n{rows}\n\n**Steps**\n\n{steps}\n"


def restore_request(request: DrillRequest, backup: str = "latest") -> RestoreRequest:
    """The restore the drill runs after the kill: no checkpoint (the target is dead); a replay
    deletes the restored databases' keys first (the target comes back with its disk's data)."""
    replay = request.strategy is RestoreStrategy.REPLAY
    return build_restore_request(
        instance=request.instance,
        storage=list(request.storage),
        backup=backup,
        target=request.target,
        target_settings=request.target_settings,
        redis_url=request.redis_url,
        password=request.password,
        strategy=request.strategy,
        flush=replay,
        checkpoint=False,
        age_identity=request.age_identity,
        environment=request.environment,
    )


def make_plan(request: DrillRequest, restore: RestorePlan, now: datetime) -> DrillPlan:
    """The drill plan from the restore's preflight of the running target."""
    backup = restore.backup
    replay = request.strategy is RestoreStrategy.REPLAY
    steps = [
        "write a marker key and count the keys of every database (just before the kill)",
        "kill the target with SIGKILL (docker kill for a container): the RTO clock starts",
    ]
    if replay:
        steps.append("start the killed target again: it comes back with whatever its disk holds")
    steps += [
        f"find backup {backup.id} again and check the target (preflight)",
        *_restore_steps(restore),
        "count the keys again: the marker must be gone (the data is the backup's), the keys lost per "
        "database are the recovery point",
        f"keep the figures in {history_prefix(request.instance)} of the first storage location",
    ]
    return DrillPlan(
        tag=restore.tag,
        instance=request.instance,
        environment=request.environment,
        target=restore.target.description,
        target_state=restore.target.state,
        strategy=request.strategy.value,
        backup_id=backup.id,
        backup_where=backup.where,
        backup_created_at=backup.created_at,
        backup_age_seconds=max(0.0, (as_utc(now) - as_utc(backup.created_at)).total_seconds()),
        backup_keys=backup.total_keys,
        backup_raw_size=backup.raw_size,
        rto_target_seconds=request.rto_target.total_seconds(),
        history=f"{redact_url(request.storage[0]).split('?')[0]}/{history_prefix(request.instance)}",
        checks=[check for check in restore.checks if check.name not in ("checkpoint", "target")],
        steps=steps,
    )


def _restore_steps(restore: RestorePlan) -> list[str]:
    """The restore's steps once the target is dead."""
    if restore.strategy == RestoreStrategy.REPLAY.value:
        return [
            "load the backup into a throwaway redis-server",
            "delete the target's keys in the restored databases, then write the backup's keys into it "
            "with their expiry",
            "verify: counts, sampled keys against the throwaway server, a test write",
        ]
    data_dir = restore.target.data_dir or "the data directory"
    return [
        f"stage the backup in {data_dir} (every byte checked)",
        "move the dead server's files aside (kept, never deleted), place the staged ones, start the "
        "target and wait until it has loaded",
        "verify: counts against the backup, sampled keys, a test write, persistence; a failure puts the "
        "previous files back and leaves the target down (the drill then says how to restore it by hand)",
    ]
