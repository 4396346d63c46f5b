"""Which files a file restore places, so that the target loads exactly the backup.

Redis with `appendonly yes` loads only its AOF and ignores dump.rdb (REDIS_FACTS,
"Restoring"): an RDB placed as dump.rdb would come up empty and be saved over.
So an RDB goes into such a target as the base of a fresh multi-part AOF (a
manifest listing only the base is valid; Redis creates the incr file at start),
and AOF stays on. An AOF backup places its whole directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis_dr.errors import UnsupportedError
from redis_dr.manifest import BackupKind, Manifest, StoredFile
from redis_dr.platforms.base import DataLayout


@dataclass(frozen=True)
class Placement:
    """What to stage and swap in: staged names with their source, and every name to swap."""

    #: Data-dir name -> the backup file whose bytes go there.
    files: dict[str, StoredFile]
    #: Data-dir name -> small generated content (an AOF manifest).
    generated: dict[str, bytes] = field(default_factory=dict)
    #: Top-level names swapped: the previous ones go aside, the staged ones come in.
    swap: list[str] = field(default_factory=list)
    #: How the target will load it, for the plan.
    how: str = ""

    @property
    def size(self) -> int:
        """Bytes staged in the data directory."""
        return sum(stored.raw_size for stored in self.files.values()) + sum(
            len(data) for data in self.generated.values()
        )


def aof_base_manifest(base_name: str) -> bytes:
    """A multi-part AOF manifest that lists only a base file."""
    return f"file {base_name} seq 1 type b\n".encode()


def plan_placement(manifest: Manifest, layout: DataLayout) -> Placement:
    """The placement of `manifest`'s backup into a server with `layout`."""
    if manifest.kind is BackupKind.RDB:
        rdb = manifest.files[0]
        if not layout.appendonly:
            return Placement(
                files={layout.dbfilename: rdb},
                swap=[layout.dbfilename],
                how=f"as {layout.dbfilename} (appendonly is off: Redis loads the RDB)",
            )
        base = f"{layout.appendfilename}.1.base.rdb"
        directory = layout.appenddirname
        return Placement(
            files={f"{directory}/{base}": rdb},
            generated={layout.aof_manifest: aof_base_manifest(base)},
            swap=[directory, layout.dbfilename],
            how=f"as the base of a fresh AOF in {directory}/ (appendonly is on: Redis loads only the AOF; "
            f"the previous {layout.dbfilename} goes aside too)",
        )
    if manifest.kind is BackupKind.AOF:
        if not layout.appendonly:
            raise UnsupportedError(
                f"backup {manifest.id} is an AOF backup but the target runs with appendonly no, so it "
                "would not load it: restore an RDB backup, or turn appendonly on in the target's config"
            )
        directory = layout.appenddirname
        files: dict[str, StoredFile] = {}
        for stored in manifest.files:
            name = stored.original_name or stored.name
            # The target finds its manifest by its own appendfilename; the files it lists keep their names.
            files[layout.aof_manifest if name.endswith(".manifest") else f"{directory}/{name}"] = stored
        return Placement(
            files=files,
            swap=[directory, layout.dbfilename],
            how=f"as the AOF directory {directory}/ ({len(files)} files)",
        )
    raise UnsupportedError(f"backup {manifest.id} is a {manifest.kind.value}: it cannot be restored by file")
