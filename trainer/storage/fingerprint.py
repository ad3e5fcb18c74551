"""Content fingerprints of folders: what decides that a base model or a trained artifact is "the same".

A path that stays the same while its files change (a base model's edited chat template, a
checkpoint folder written again) is a change, so anything that decides "unchanged" hashes what it
reads, not the setting that names it. Small files (configs, tokenizers, templates, adapters, the
tiny model's weights) are hashed whole; a large one (a multi-GB weight shard) by its name, size,
modification time and the name of the file it links to (the Hugging Face cache links each file to a
blob named by its content hash): hashing gigabytes on every run would cost minutes, and a weight file
rewritten in place gets a new modification time, so the trade-off errs towards training again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

WHOLE_FILE_MAX_BYTES = 16 * 2**20


def folder_fingerprint(folder: Path) -> str:
    """A short sha256 over every file under `folder` (relative name and content or manifest line)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    if folder.is_file():
        _add_file(digest, folder, folder.name)
        return digest.hexdigest()[:16]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        _add_file(digest, path, path.relative_to(folder).as_posix())
    return digest.hexdigest()[:16]


def _add_file(digest, path: Path, name: str) -> None:
    stat = path.stat()  # follows a link: the size and time of what the model loads
    digest.update(name.encode() + b"\0")
    if stat.st_size <= WHOLE_FILE_MAX_BYTES:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(2**20), b""):
                digest.update(block)
    else:
        target = os.path.realpath(path).rsplit(os.sep, 1)[-1]
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}:{target}".encode())
    digest.update(b"\0")
