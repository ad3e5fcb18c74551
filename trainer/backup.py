"""Back up a run's artifacts to any fsspec path with a sha256 manifest, and verify a backup.

The copy goes to `<dest>/<name>.partial/` and is renamed to `<dest>/<name>/` only after the
manifest is written and every file re-read and checked, so a folder without `.partial` is always a
complete, verified backup. A backup restores without MLflow: the manifest says what each file is.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST = "manifest.json"


class BackupError(RuntimeError):
    pass


@dataclass
class BackupManifest:
    location: str
    created_at: str
    files: dict[str, dict[str, object]]  # relative path -> {"sha256", "bytes"}
    metadata: dict[str, str]

    @property
    def total_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files.values())


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_remote(fs, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(sources: dict[str, Path], destination: str, name: str, metadata: dict[str, str] | None = None) -> BackupManifest:
    """Copy `sources` (label -> file or folder) to `<destination>/<name>/` and write the manifest."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(destination)
    final = f"{root.rstrip('/')}/{name}"
    partial = f"{final}.partial"
    if fs.exists(final):
        # Same flow run backed up before (a retry): verify what is there instead of copying again.
        return verify(f"{destination.rstrip('/')}/{name}")
    if fs.exists(partial):
        fs.rm(partial, recursive=True)
    files: dict[str, dict[str, object]] = {}
    for label, source in sources.items():
        paths = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for path in paths:
            relative = f"{label}/{path.relative_to(source).as_posix()}" if source.is_dir() else f"{label}/{path.name}"
            fs.makedirs(f"{partial}/{relative}".rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), f"{partial}/{relative}")
            files[relative] = {"sha256": _sha256_file(path), "bytes": path.stat().st_size}
    manifest = BackupManifest(
        location=f"{destination.rstrip('/')}/{name}",
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        files=files,
        metadata=metadata or {},
    )
    with fs.open(f"{partial}/{MANIFEST}", "w") as fh:
        fh.write(json.dumps(asdict(manifest), indent=2))
    _check(fs, partial, manifest)
    fs.mv(partial, final, recursive=True)
    return manifest


def _check(fs, root: str, manifest: BackupManifest) -> None:
    for relative, entry in manifest.files.items():
        path = f"{root}/{relative}"
        if not fs.exists(path):
            raise BackupError(f"{manifest.location}: {relative} is missing")
        actual = _sha256_remote(fs, path)
        if actual != entry["sha256"]:
            raise BackupError(f"{manifest.location}: {relative} is corrupt (sha256 {actual[:12]}… != {str(entry['sha256'])[:12]}…)")


def verify(location: str) -> BackupManifest:
    """Re-read every file of a backup and check it against the manifest."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    manifest_path = f"{root.rstrip('/')}/{MANIFEST}"
    if not fs.exists(manifest_path):
        raise BackupError(f"{location}: no {MANIFEST}; not a backup, or an incomplete one")
    with fs.open(manifest_path, "r") as fh:
        manifest = BackupManifest(**json.load(fh))
    _check(fs, root.rstrip("/"), manifest)
    return manifest
