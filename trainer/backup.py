"""Back up a run's artifacts to any fsspec path with a sha256 manifest, and verify a backup.

Layout of `<destination>/<name>/`: one folder or file per source label (adapter/, checkpoint/,
settings/, eval/, data/, model/, base_model/, merged/), and `MANIFEST.json` with the sha256 and
size (`bytes`) of every file. The manifest is written last and is the completion marker:

- files are copied, then each is re-read from the destination and hashed; only when every hash
  matches is MANIFEST.json written, and then the whole backup is verified once more from it;
- a folder without MANIFEST.json is an unfinished copy (a crash, a retry in progress);
- a backup with a missing or changed file is *incomplete*: `verify` raises BackupError listing
  every such file and never returns it as good.

No rename: on object stores (s3://, gs://) a folder rename is a copy of every object, and the
manifest-last rule gives the same guarantee. A retried backup of the same run verifies what is
there and, if it is unfinished or incomplete, removes it and copies again. A backup restores
without MLflow (see `trainer.restore`): the manifest says what each file is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainer.redact import redact, redact_value

log = logging.getLogger("llm_trainer.backup")

MANIFEST = "MANIFEST.json"
LEGACY_MANIFEST = "manifest.json"  # backups written before the manifest was renamed
FORMAT = 2


class BackupError(RuntimeError):
    pass


class BackupSourceError(BackupError, ValueError):
    """A file to back up is missing: a bug, not a transient error, so never retried."""


@dataclass
class BackupManifest:
    location: str
    created_at: str
    files: dict[str, dict[str, object]]  # relative path -> {"sha256", "bytes"}
    metadata: dict[str, object]
    format: int = 1
    contents: dict[str, str] = field(default_factory=dict)  # top-level entry -> what it holds

    @property
    def total_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files.values())


def _sha256(fs, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _join(location: str, name: str) -> str:
    return f"{location.rstrip('/')}/{name}"


def plan(sources: dict[str, Path]) -> dict[str, Path]:
    """relative destination path -> local file, for `sources` (label -> file or folder)."""
    files: dict[str, Path] = {}
    for label, source in sources.items():
        source = Path(source)
        if source.is_file():
            files[f"{label}/{source.name}"] = source
        elif source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                files[f"{label}/{path.relative_to(source).as_posix()}"] = path
        else:
            raise BackupSourceError(f"backup source {label}: {source} does not exist")
    return files


def backup(sources: dict[str, Path], destination: str, name: str, metadata: dict | None = None,
           contents: dict[str, str] | None = None) -> BackupManifest:
    """Copy `sources` (label -> file or folder) to `<destination>/<name>/`, verify every copy, then
    write MANIFEST.json. A finished backup of the same name is verified instead of copied again."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(destination)
    location = _join(destination, name)
    final = _join(root, name)
    if fs.exists(_join(final, MANIFEST)):
        try:
            return verify(location)  # the same run backed up before (a retry)
        except BackupError as exc:
            log.warning("Existing backup is incomplete, copying again: %s", exc)
    if fs.exists(final):
        fs.rm(final, recursive=True)  # an unfinished or incomplete copy of this same run
    if fs.exists(f"{final}.partial"):  # left by the previous backup format
        fs.rm(f"{final}.partial", recursive=True)

    files: dict[str, dict[str, object]] = {}
    for relative, path in plan(sources).items():
        target = _join(final, relative)
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), target)
        files[relative] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = BackupManifest(
        location=redact(location),  # the file may travel; credentials in a URL must not
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        files=files,
        metadata=metadata or {},
        format=FORMAT,
        contents=contents or {},
    )
    problems = _problems(fs, final, manifest)  # re-read every copy before declaring the backup complete
    if problems:
        raise BackupError(f"{location}: copy failed verification: {problems}")
    with fs.open(_join(final, MANIFEST), "w") as fh:
        fh.write(json.dumps(redact_value(asdict(manifest)), indent=2))
    return verify(location)


def _problems(fs, root: str, manifest: BackupManifest) -> str:
    missing, changed = [], []
    for relative, entry in manifest.files.items():
        path = _join(root, relative)
        if not fs.exists(path):
            missing.append(relative)
            continue
        size = fs.size(path)
        if size != int(entry["bytes"]):
            changed.append(f"{relative} (size {size} != {entry['bytes']})")
            continue
        actual = _sha256(fs, path)
        if actual != entry["sha256"]:
            changed.append(f"{relative} (sha256 {actual[:12]}… != {str(entry['sha256'])[:12]}…)")
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}")
    if changed:
        parts.append(f"{len(changed)} changed: {', '.join(changed[:5])}{', …' if len(changed) > 5 else ''}")
    return "; ".join(parts)


def read_manifest(location: str) -> BackupManifest:
    """The manifest of a backup, not yet verified; BackupError when there is none."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    for name in (MANIFEST, LEGACY_MANIFEST):
        path = _join(root, name)
        if fs.exists(path):
            with fs.open(path, "r") as fh:
                try:
                    data = json.load(fh)
                except ValueError:
                    raise BackupError(f"{location}: {name} is not valid JSON; the backup is incomplete") from None
            known = set(BackupManifest.__dataclass_fields__)
            manifest = BackupManifest(**{k: v for k, v in data.items() if k in known})
            manifest.location = location  # where it is now, which is where it was read from
            return manifest
    raise BackupError(f"{location}: no {MANIFEST}; not a backup, or an unfinished one")


def verify(location: str) -> BackupManifest:
    """Re-read every file of a backup and check size and sha256 against the manifest; BackupError
    naming every missing or changed file when the backup is incomplete."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    manifest = read_manifest(location)
    problems = _problems(fs, root.rstrip("/"), manifest)
    if problems:
        raise BackupError(f"{location}: incomplete backup, {problems}")
    return manifest
