"""Names that deployments and runs share: tags, and the lease every run of one instance takes."""

from __future__ import annotations

#: The tag every deployment of redis-dr carries (stale ones are found by it).
PROJECT_TAG = "redis-dr"
#: The tag of a protected environment's deployments: their restores wait for a person's approval.
PROTECTED_TAG = "protected"


def lease_name(environment: str | None, instance: str) -> str:
    """The global concurrency limit (one slot) every run of one instance's flows takes."""
    return f"redis-dr-{environment or 'adhoc'}-{instance}"


def instance_tag(environment: str | None, instance: str) -> str:
    """The tag that marks every run of one instance's flows (holders of its lease are found by it)."""
    return f"instance:{environment or 'adhoc'}/{instance}"
