"""What validation reads: the data path's files (and `datasets` folders), their digests for the
fingerprint, their rows, and the files it does not read, each said in the report.

Files are hashed as streams and their rows are read file by file (`file_rows`), so validation
holds one chunk of rows at a time; a large JSON Lines file is read in blocks (readers.iter_rows)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainer.data.contracts.report import FileReport
from trainer.data.files import (
    TEXT_SUFFIX,
    dataset_fingerprint,
    discover,
    display_name,
    folder_digest,
    stream_digest,
    suffix,
)
from trainer.data.readers import ColumnarError, NotRecords, UnreadableData, iter_rows
from trainer.data.rows import Row
from trainer.errors import DataUnusableError

DATA_FILES = "*.jsonl, *.json, *.csv, *.parquet, *.jsonl.gz / *.json.gz or a `datasets` save_to_disk folder"


@dataclass
class Intake:
    rows: list[Row] = field(default_factory=list)  # the rows of the chunk being checked
    file_rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # display -> [start, end) into rows
    file_reports: dict[str, FileReport] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)  # display -> the file or `datasets` folder
    digests: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # files under the folder that are not read
    warnings: list[str] = field(default_factory=list)  # why a file that looks like data is not read


def _discover(data_path: Path, text_files: bool):
    if not data_path.exists():
        what = "is a broken link" if data_path.is_symlink() else "does not exist"
        raise DataUnusableError(
            f"{data_path}: {what}; point training_data_path at a folder of data files ({DATA_FILES})"
        )
    found = discover(data_path, text_files)
    root = data_path if data_path.is_dir() else data_path.parent
    if not found.data:
        if not data_path.is_dir():
            if suffix(data_path) == TEXT_SUFFIX:
                raise DataUnusableError(
                    f"{data_path}: plain text; set dataset_format: text (CLI: --format text) to train on it, one "
                    "document per line"
                )
            raise DataUnusableError(f"{data_path}: not a data file ({DATA_FILES})")
        other = found.other
        ignored = (
            f" (ignored: {', '.join(display_name(p, root) for p in other[:5])}{', ...' if len(other) > 5 else ''})"
            if other
            else ""
        )
        raise DataUnusableError(f"{data_path}: no data files found ({DATA_FILES}; subfolders included){ignored}")
    return found, root


def _unreadable(path: Path, display: str, data_path: Path, exc: OSError) -> DataUnusableError:
    why = exc.strerror or str(exc)
    if not os.path.exists(path):
        why = "a broken link" if os.path.islink(path) else "it disappeared while reading"
    return DataUnusableError(f"{display}: unreadable ({why}); fix its permissions or remove it from {data_path}")


def _digest(path: Path, display: str, data_path: Path) -> tuple[str, int]:
    """(sha256, size) of a data file, read as a stream; of a `datasets` folder, a digest over its files."""
    try:
        return folder_digest(path) if path.is_dir() else stream_digest(path)
    except OSError as exc:
        raise _unreadable(path, display, data_path, exc) from None


def fingerprint_path(data_path: Path, text_files: bool = False) -> str:
    """The fingerprint validate_dataset would record, without validating (for cache keys)."""
    data_path = Path(data_path)
    found, root = _discover(data_path, text_files)
    return dataset_fingerprint(
        {display_name(p, root): _digest(p, display_name(p, root), data_path)[0] for p in found.data}
    )


def open_data(data_path: Path, text_files: bool) -> Intake:
    """Every data file found, hashed and given its report line; no rows read yet (`file_rows`).
    DataUnusableError when the path holds no data or a file can't be read."""
    found, root = _discover(data_path, text_files)
    intake = Intake()
    for path in found.data:
        display = display_name(path, root)
        digest, size = _digest(path, display, data_path)
        intake.digests[display] = digest
        intake.paths[display] = path
        intake.file_reports[display] = FileReport(path=display, format=None, size_bytes=size, sha256=digest)
    intake.ignored = sorted({display_name(p, root) for p in [*found.other, *found.warnings]})
    intake.warnings += [f"{display_name(p, root)}: not read: {why}" for p, why in found.warnings.items()]
    return intake


def file_rows(intake: Intake, display: str, data_path: Path, mapping: Mapping[str, str]) -> Iterator[Row]:
    """The rows of one file of `intake`, as they are read. A file that holds no records is dropped
    from the intake with a warning (and yields nothing); one that can't be read is DataUnusableError."""
    path = intake.paths[display]
    try:
        yield from iter_rows(path, display, mapping)
    except NotRecords as exc:
        intake.ignored = sorted({*intake.ignored, display})
        intake.warnings.append(f"{display}: not read: {exc}")
        del intake.file_reports[display], intake.paths[display]  # its digest stays in the fingerprint
    except OSError as exc:
        raise _unreadable(path, display, data_path, exc) from None
    except (UnreadableData, ColumnarError) as exc:
        raise DataUnusableError(f"{display}: {exc}; fix it or remove it from {data_path}") from None
