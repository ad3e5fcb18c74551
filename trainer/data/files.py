"""Finding the training files under a folder and reading their bytes, with the names reports use.

Data files: JSON Lines (`*.jsonl`, `*.ndjson`), JSON (`*.json`: an array of records, or JSON Lines
saved as .json), either gzip-compressed (`*.jsonl.gz`, `*.json.gz`), CSV, Parquet, and folders
written by Hugging Face `datasets`' `save_to_disk` (a `DatasetDict` folder: its `train` split).
Plain text (`*.txt`, one document per line) is data only when the format is forced to `text`.
Every other file is listed as not read, with a warning when it looks like data.

A file is named by its path relative to the data folder (`/` separators); the dataset's
fingerprint is a hash over (name, sha256 of bytes) of every data file (of every file of a
`datasets` folder). Reading never modifies the input files.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".jsonl.gz", ".ndjson.gz", ".json.gz")
TEXT_SUFFIX = ".txt"
# Files that look like data but are not read: each gets a warning in the report.
DATA_LIKE = {
    ".txt": "plain text is read only with dataset_format: text (one document per line)",
    ".tsv": "tab-separated files are not read; save it as CSV or JSON Lines",
    ".xlsx": "spreadsheets are not read; save it as CSV",
    ".xls": "spreadsheets are not read; save it as CSV",
    ".arrow": "a bare Arrow file is not read; save the dataset with datasets' save_to_disk, or as Parquet",
    ".feather": "Feather files are not read; save it as Parquet",
    ".pkl": "pickles are not read (loading one runs code); save it as JSON Lines or Parquet",
    ".pickle": "pickles are not read (loading one runs code); save it as JSON Lines or Parquet",
    ".zip": "archives are not read; unpack it into the data folder",
    ".tar": "archives are not read; unpack it into the data folder",
    ".gz": "only .jsonl.gz and .json.gz are read compressed; unpack it",
    ".bz2": "only gzip-compressed JSON is read; unpack it",
    ".xz": "only gzip-compressed JSON is read; unpack it",
    ".zst": "only gzip-compressed JSON is read; unpack it",
}
HF_FILES = ("state.json", "dataset_info.json")  # what `Dataset.save_to_disk` writes beside its Arrow shards


class Discovery(NamedTuple):
    data: list[Path]  # data files and `datasets` folders, sorted by name
    other: list[Path]  # everything else that is not hidden, sorted by name
    warnings: dict[Path, str]  # why a file (or split folder) that looks like data is not read


def suffix(path: Path) -> str:
    """The data suffix a file goes by (`.jsonl.gz` counts as one), lower case; "" if none."""
    name = path.name.lower()
    for compound in (".jsonl.gz", ".ndjson.gz", ".json.gz"):
        if name.endswith(compound):
            return compound
    return Path(name).suffix


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in HF_FILES)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def refuse_link_out(path: Path, root: Path, inside: str) -> None:
    """DataUnusableError when `path` is a link that leads out of the data folder. A data folder is a
    closed world: a link to /etc/passwd would be read and its lines copied into the quarantine file
    and the report. Links within the folder are followed (its real path stays inside)."""
    if not os.path.islink(path):
        return
    target = os.path.realpath(path)
    if target == inside or target.startswith(inside.rstrip(os.sep) + os.sep):
        return
    from trainer.errors import DataUnusableError

    raise DataUnusableError(
        f"{display_name(path, root)}: a link out of the data folder (to {target}); links are not followed out of "
        f"{root}: copy the file into the folder instead"
    )


def discover(root: Path, text_files: bool = False) -> Discovery:
    """Data files and folders under `root`, subfolders included (`text_files`: `*.txt` counts as data).

    Hidden files and folders (`.git`, `.DS_Store`, editor swap files) are skipped silently. Every
    non-folder entry with a data suffix counts as a data file, including broken links and FIFOs,
    so that reading it fails loudly instead of the file being skipped without a word. A link that
    leads out of `root` stops the discovery (`refuse_link_out`): nothing outside the folder is read.
    """
    root = Path(root)
    data_suffixes = DATA_SUFFIXES + ((TEXT_SUFFIX,) if text_files else ())
    if not root.is_dir():
        return Discovery([root], [], {}) if suffix(root) in data_suffixes else Discovery([], [root], {})
    data, other, warnings = [], [], {}
    if is_hf_folder(root):
        return Discovery([root], [], {})
    seen_dirs: set[str] = set()
    inside = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a link loop: walk each real folder once
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in [*dirnames, *filenames]:
            if not name.startswith("."):
                refuse_link_out(here / name, root, inside)
        if "dataset_dict.json" in filenames:  # a DatasetDict: its train split trains, the others don't
            _dataset_dict(here, dirnames, data, warnings)
            filenames = [n for n in filenames if n != "dataset_dict.json"]
        for name in list(dirnames):
            if is_hf_folder(here / name):
                data.append(here / name)
                dirnames.remove(name)
        for name in filenames:
            path = here / name
            if _hidden(path.relative_to(root)):
                continue
            if suffix(path) in data_suffixes:
                data.append(path)
            else:
                other.append(path)
                if suffix(path) in DATA_LIKE:
                    warnings[path] = DATA_LIKE[suffix(path)]
    key = lambda p: display_name(p, root)  # noqa: E731
    return Discovery(sorted(data, key=key), sorted(other, key=key), warnings)


def _dataset_dict(folder: Path, dirnames: list[str], data: list[Path], warnings: dict[Path, str]) -> None:
    try:
        splits = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a DatasetDict we understand: its folders are walked like any others
    for split in splits:
        if split not in dirnames:
            continue
        dirnames.remove(split)
        if split == "train":
            data.append(folder / split)
        else:
            warnings[folder / split] = (
                f"the {split!r} split of a saved DatasetDict is not trained on (its 'train' split is); point "
                "eval_data_path at it to evaluate on it"
            )


def display_name(path: Path, root: Path) -> str:
    """How reports name a file: its path relative to the data folder, with `/` separators."""
    if root.is_dir() and path != root:
        return path.relative_to(root).as_posix()
    return path.name


def read_file_bytes(path: Path) -> bytes:
    """A data file's bytes. OSError when it can't be read; FIFOs, sockets and devices are refused
    without opening them (reading a FIFO would block forever)."""
    mode = os.stat(path).st_mode  # follows links: a broken link raises FileNotFoundError here
    if not stat.S_ISREG(mode):
        raise OSError(f"not a regular file ({_file_kind(mode)})")
    return Path(path).read_bytes()


def folder_files(folder: Path) -> list[Path]:
    """The files of a `datasets` folder, sorted, hidden ones left out."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and not _hidden(p.relative_to(folder)))


def folder_digest(folder: Path) -> tuple[str, int]:
    """(sha256 over (name, sha256) of every file of a `datasets` folder, their total size)."""
    digest, size = hashlib.sha256(), 0
    for path in folder_files(folder):
        data = read_file_bytes(path)
        size += len(data)
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + file_digest(data).encode() + b"\n")
    return digest.hexdigest(), size


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stream_digest(path: Path) -> tuple[str, int]:
    """(sha256, size) of a data file, read in blocks (a file of gigabytes is never held whole);
    FIFOs, sockets and devices refused as read_file_bytes refuses them."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise OSError(f"not a regular file ({_file_kind(mode)})")
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256")
        return digest.hexdigest(), fh.tell()


def dataset_fingerprint(digests: Mapping[str, str]) -> str:
    """sha256 over (relative path, sha256 of bytes) of every data file, sorted by path: the same
    files give the same fingerprint whatever order they were found in; a rename or an edit changes it."""
    digest = hashlib.sha256()
    for name in sorted(digests):
        digest.update(name.encode("utf-8") + b"\0" + digests[name].encode("ascii") + b"\n")
    return digest.hexdigest()
