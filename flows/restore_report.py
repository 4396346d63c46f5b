"""What a restore run tells people: the plan before, then phases, verification and the outcome."""

from dataclasses import dataclass, field

from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from redis_dr.manifest import Manifest
from redis_dr.restore.phases import PhaseClock
from redis_dr.restore.plan import RestorePlan
from redis_dr.restore.request import RestoreRequest
from redis_dr.restore.verify import VerifyReport

#: Phases in the order a restore runs them (the report lists them so): find the backup, preflight,
#: approval, checkpoint, fetch (download, check and stage the files), stop, place, load, verify;
#: a replay loads a throwaway server and replays instead of stop / place.
PHASES = (
    "find", "preflight", "approval", "checkpoint", "fetch", "stop", "place", "load", "replay", "verify",
)  # fmt: skip


class RestoreOutcome(BaseModel):
    """What the restore flow returns (and `--json` prints)."""

    tag: str
    instance: str
    backup_id: str
    strategy: str
    target: str
    checkpoint_id: str | None = None
    aside: str | None = None
    phases: dict[str, float] = Field(default_factory=dict)
    recovery_seconds: float
    verification: VerifyReport


@dataclass
class RestoreRun:
    """How far a restore run got and what it learned on the way."""

    request: RestoreRequest
    tag: str
    step: str = "start"
    plan: RestorePlan | None = None
    checkpoint: Manifest | None = None
    report: VerifyReport | None = None
    moved_aside: list[str] = field(default_factory=list)
    clock: PhaseClock = field(default_factory=PhaseClock)


def phase_lines(phases: dict[str, float], recovery: float | None) -> list[str]:
    """'fetch 1.2 s, preflight 0.1 s, ...; recovery 9.8 s' as lines, in run order."""
    ordered = [name for name in PHASES if name in phases] + [n for n in phases if n not in PHASES]
    lines = [f"{name:<11} {phases[name]:8.1f} s" for name in ordered]
    if recovery is not None:
        lines.append(f"{'recovery':<11} {recovery:8.1f} s  (from start to verified)")
    return lines


def verification_lines(report: VerifyReport) -> list[str]:
    """One line per finding."""
    return [f"{item.result.value.upper():<5} {item.name}: {item.detail}" for item in report.findings]


def publish_artifact(run: RestoreRun, *, recovery: float | None = None, error: str | None = None) -> None:
    """The run's report: outcome, the plan as shown, phase times, verification."""
    request = run.request
    if error:
        head = f"**Restore of {request.instance} FAILED** at {run.step}: {error}"
    else:
        head = f"**Restore of {request.instance} verified** in {recovery or 0:.1f} s (from start to verified)"
    parts = [head]
    if run.checkpoint is not None:
        parts.append(f"Checkpoint of the previous data: backup `{run.checkpoint.id}` (label pre-restore).")
    if run.plan is not None:
        parts.append("## Plan\n\n" + run.plan.markdown())
    if run.clock.seconds:
        parts.append("## Phases\n\n```\n" + "\n".join(phase_lines(run.clock.seconds, recovery)) + "\n```")
    if run.report is not None and run.report.findings:
        rows = "\n".join(
            f"| {item.result.value} | {item.name} | {item.detail} |" for item in run.report.findings
        )
        parts.append(f"## Verification\n\n| result | check | detail |\n|---|---|---|\n{rows}")
    create_markdown_artifact(
        markdown="\n\n".join(parts),
        key=f"restore-{request.instance}".replace("_", "-").replace(".", "-"),
        description=f"restore {run.tag} of {request.instance}",
    )
