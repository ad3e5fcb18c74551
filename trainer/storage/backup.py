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

A failed copy leaves nothing that looks like a backup: the partial folder is removed on any error.
A destination that runs out of space fails at once with BackupSpaceError (never retried), naming the
path and the bytes the backup needs; on a local disk the free space is checked before copying.

A manifest is data read from somewhere else: an entry that is absolute, holds `..` or leads through
a symbolic link is refused (BackupEntryError), so neither `verify` nor `restore` ever reads or
writes outside the backup and its destination.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainer.errors import BackupCopyError, BackupEntryError, BackupError, BackupSourceError, BackupSpaceError
from trainer.layout import BACKUP_MANIFEST, is_plain_relative
from trainer.redact import redact, redact_value

log = logging.getLogger("llm_trainer.backup")

MANIFEST = BACKUP_MANIFEST
LEGACY_MANIFEST = "manifest.json"  # backups written before the manifest was renamed
FORMAT = 2


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


def open_location(location: str):
    """fsspec's filesystem and root for a backup location; BackupError naming it when its scheme is
    unknown, its package is not installed or the URL can't be opened (a `zip::` chain on a non-zip)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except ImportError as exc:
        raise BackupError(f"{redact(location)}: {exc} (the package for this location is not installed)") from None
    except Exception as exc:  # fsspec's implementations raise their own kinds (BadZipFile, ...)
        raise BackupError(f"{redact(location)}: can't open this location ({type(exc).__name__}: {exc})") from None


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


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def check_entry(location: str, relative: object) -> str:
    """`relative` if it is a plain path inside the backup; BackupEntryError naming it otherwise."""
    if not is_plain_relative(relative):
        raise BackupEntryError(
            f"{location}: MANIFEST.json entry {relative!r} is not a path inside the backup (absolute, '..' or "
            "empty parts); refusing to read or write it"
        )
    return str(relative)


def check_no_link(fs, root: str, relative: str, location: str) -> None:
    """On a local disk: BackupEntryError when `relative` (or a folder on its way) is a symbolic link or
    resolves outside `root`; a link in a backup is refused, never followed."""
    if not _is_local(fs):
        return  # object stores have no links; check_entry keeps keys inside the backup
    current = root
    for part in relative.split("/"):
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise BackupEntryError(
                f"{location}: {relative} is a symbolic link inside the backup; refusing to follow it"
            )
    real_root = os.path.realpath(root)
    if not os.path.realpath(current).startswith(real_root + os.sep):
        raise BackupEntryError(f"{location}: {relative} resolves outside the backup; refusing to read it")


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


def backup(
    sources: dict[str, Path],
    destination: str,
    name: str,
    metadata: dict | None = None,
    contents: dict[str, str] | None = None,
) -> BackupManifest:
    """Copy `sources` (label -> file or folder) to `<destination>/<name>/`, verify every copy, then
    write MANIFEST.json. A finished backup of the same name is verified instead of copied again; on
    any failure the partial copy is removed (nothing that looks like a backup is left)."""

    fs, root = open_location(destination)
    location = _join(destination, name)
    final = _join(root, name)
    if fs.exists(_join(final, MANIFEST)):
        try:
            return verify(location)  # the same run backed up before (a retry)
        except BackupError as exc:
            log.warning("Existing backup is incomplete, copying again: %s", exc)
    for leftover in (final, f"{final}.partial"):  # an unfinished copy of this run; the previous format's
        if fs.exists(leftover):
            fs.rm(leftover, recursive=True)
    files = plan(sources)
    needed = sum(path.stat().st_size for path in files.values())
    check_free_space(fs, root, needed, len(files), location)
    try:
        return _copy_and_seal(fs, files, final, location, metadata, contents)
    except BaseException as exc:
        _remove_partial(fs, final)
        if is_out_of_space(exc):
            raise BackupSpaceError(
                f"artifact_backup_save_path: no space left at {redact(location)} (the backup needs {needed:,} bytes, "
                f"{needed / 2**20:.1f} MiB); the partial copy was removed. Free space or back up elsewhere"
            ) from None
        raise


def _copy_and_seal(
    fs, files: dict[str, Path], final: str, location: str, metadata: dict | None, contents: dict[str, str] | None
) -> BackupManifest:
    """Copy, re-read every copy, write MANIFEST.json last, verify the whole backup from it."""
    copied: dict[str, dict[str, object]] = {}
    for relative, path in files.items():
        target = _join(final, relative)
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), target)
        copied[relative] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = BackupManifest(
        location=redact(location),  # the file may travel; credentials in a URL must not
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        files=copied,
        metadata=metadata or {},
        format=FORMAT,
        contents=contents or {},
    )
    problems = _problems(fs, final, manifest, location)  # re-read every copy before declaring it complete
    if problems:
        raise BackupCopyError(f"{location}: copy failed verification: {problems}")
    with fs.open(_join(final, MANIFEST), "w") as fh:
        fh.write(json.dumps(redact_value(asdict(manifest)), indent=2))
    return verify(location)


# What a file takes on a disk beyond its bytes (up to a block), and MANIFEST.json's line for it.
_BLOCK, _MANIFEST_LINE = 4096, 200


def check_free_space(fs, root: str, needed: int, count: int, location: str) -> None:
    """On a local disk (the only kind that says how much is free): BackupSpaceError before copying
    anything when the `count` files of `needed` bytes cannot fit."""
    if not _is_local(fs):
        return
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + (_BLOCK + _MANIFEST_LINE) * (count + 1):
        raise BackupSpaceError(
            f"artifact_backup_save_path: {redact(location)} needs {needed:,} bytes ({needed / 2**20:.1f} MiB) for "
            f"this backup, only {free:,} bytes are free there; free space or back up elsewhere"
        )


def is_out_of_space(exc: BaseException | None) -> bool:
    """True when `exc` (or what caused it) says the disk or quota is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "no space left on device" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _remove_partial(fs, final: str) -> None:
    try:
        if fs.exists(final):
            fs.rm(final, recursive=True)
    except Exception as cleanup:  # the original failure is what the user must see
        log.warning("Could not remove the partial backup %s: %s", redact(final), cleanup)


def _problems(fs, root: str, manifest: BackupManifest, location: str) -> str:
    missing, changed = [], []
    for relative, entry in manifest.files.items():
        check_no_link(fs, root, check_entry(location, relative), location)
        path = _join(root, relative)
        if not fs.exists(path):
            missing.append(relative)
            continue
        info = fs.info(path)
        if info.get("type") != "file":  # a folder, or a FIFO whose read would block forever
            changed.append(f"{relative} (not a regular file)")
            continue
        size = info.get("size")
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


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are unique: with two entries for one file, the first would be verified
    and the other restored (JSON's last one wins)."""
    document: dict = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(repr(key))
        document[key] = value
    return document


def read_manifest(location: str) -> BackupManifest:
    """The manifest of a backup, not yet verified; BackupError when there is none."""

    fs, root = open_location(location)
    for name in (MANIFEST, LEGACY_MANIFEST):
        path = _join(root, name)
        if fs.exists(path):
            check_no_link(fs, root.rstrip("/"), name, location)
            info = fs.info(path)
            if info.get("type") != "file":
                raise BackupError(f"{location}: {name} is not a regular file; not a backup")
            if (info.get("size") or 0) > MAX_MANIFEST_BYTES:
                raise BackupError(
                    f"{location}: {name} is larger than {MAX_MANIFEST_BYTES // 2**20} MiB; not a manifest we wrote"
                )
            with fs.open(path, "r") as fh:
                try:
                    data = json.load(fh, object_pairs_hook=_no_duplicate_keys)
                except _DuplicateKey as exc:
                    raise BackupError(f"{location}: {name} names {exc} twice; not a manifest we wrote") from None
                except (ValueError, RecursionError):
                    raise BackupError(f"{location}: {name} is not valid JSON; the backup is incomplete") from None
            if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
                raise BackupError(f"{location}: {name} lists no files; not a backup manifest")
            for relative, entry in data["files"].items():
                check_entry(location, relative)
                if not (
                    isinstance(entry, dict)
                    and type(entry.get("bytes")) is int
                    and entry["bytes"] >= 0
                    and isinstance(entry.get("sha256"), str)
                ):
                    raise BackupError(f"{location}: {name} entry {relative!r} has no sha256 and byte count")
            for key in ("metadata", "contents"):
                if not isinstance(data.get(key, {}), dict):
                    raise BackupError(f"{location}: {name} {key} is not an object; not a manifest we wrote")
            return BackupManifest(
                location=location,  # where it is now, which is where it was read from
                created_at=str(data.get("created_at", "")),
                files=data["files"],
                metadata=data.get("metadata", {}),
                format=data["format"] if type(data.get("format")) is int else 1,
                contents=data.get("contents", {}),
            )
    raise BackupError(f"{location}: no {MANIFEST}; not a backup, or an unfinished one")


# A manifest lists a few dozen files (a few KB); one this large was not written by a backup.
MAX_MANIFEST_BYTES = 16 * 2**20
# What a restore needs to rebuild a model. A manifest without them proves nothing however well its
# files hash (an empty one verified "0 files" once): verify means "this backup can rebuild a model".
REQUIRED_FILES = ("adapter/adapter_config.json", "adapter/adapter_model.safetensors")


def verify(location: str) -> BackupManifest:
    """Re-read every file of a backup and check size and sha256 against the manifest; BackupError
    naming every missing or changed file when the backup is incomplete, or when its manifest lacks
    the files a restore needs (REQUIRED_FILES)."""

    fs, root = open_location(location)
    manifest = read_manifest(location)
    absent = [name for name in REQUIRED_FILES if name not in manifest.files]
    if absent:
        raise BackupError(
            f"{location}: {MANIFEST} lists no {' and no '.join(absent)}; not a backup a model can be restored from"
        )
    problems = _problems(fs, root.rstrip("/"), manifest, location)
    if problems:
        raise BackupError(f"{location}: incomplete backup, {problems}")
    return manifest
