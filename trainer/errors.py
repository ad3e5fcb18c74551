"""The errors the pipeline raises on purpose, in one place.

Each says in one line what is wrong and where. They are *deterministic*: trying again fails the
same way, so the Prefect tasks never retry them (`tasks/retry.py`), and the CLI prints them as one
`error:` line without a traceback. Transient failures (a flaky disk or network, a server that does
not answer, a crashed worker process) are the library's and the OS's own exceptions, or
`TransientError`.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of the deterministic errors: bad input the user has to fix; never retried."""


class SettingsError(PipelineError, ValueError):
    """A bad setting: the message is one line naming the setting and what is allowed."""


class DataUnusableError(PipelineError, ValueError):
    """The input can't be validated at all (missing path, no data files, unreadable, incompatible formats)."""


class DataGateError(PipelineError, ValueError):
    """The data was validated but fails a gate (too few valid rows, too many quarantined)."""


class ContractError(PipelineError, ValueError):
    """A suite in data_contracts/ doesn't fit the validator: a bug in the contract, not in the data."""


class TemplateRenderError(PipelineError, ValueError):
    """The base model's chat template can't render a row (it raises, or leaves out or rewrites what the row
    says to train): that row is quarantined as `template_error` with the template's own message."""


class TemplateTimeoutError(PipelineError, ValueError):
    """The chat template ran past its time bound on one conversation (`trainer/model/templates.py:
    RENDER_SECONDS`): a template that slow can't prepare a dataset, so the work stops, naming the row."""


class BackupError(PipelineError, RuntimeError):
    """A backup is unfinished, incomplete or unusable (a missing or changed file, no manifest)."""


class BackupSourceError(BackupError, ValueError):
    """A file to back up is missing: a bug, not a transient error, so never retried."""


class BackupEntryError(BackupError, ValueError):
    """A backup's MANIFEST.json names an entry outside the backup (an absolute path, `..`, a symlink):
    nothing is read or written for it."""


class OutOfSpaceError(PipelineError, RuntimeError):
    """No space left where the pipeline writes (a run's output_dir, a backup destination): the message
    names the path and the bytes needed. Trying again fills the same disk, so it is never retried."""


class BackupSpaceError(BackupError, OutOfSpaceError):
    """The backup destination has no room for the backup; the partial copy was removed."""


class CheckpointError(PipelineError, ValueError):
    """A checkpoint or adapter to start from is incomplete or corrupt (a file missing, truncated or
    changed since its completion marker was written, or unreadable): named, and never retried."""


class NonFiniteError(PipelineError, ValueError):
    """Training diverged: the training loss or an eval metric is NaN or infinite. Such a model is never
    registered as champion."""


class TrackingUnavailableError(PipelineError, RuntimeError):
    """The MLflow tracking server did not answer within the client's wait budget
    (`trainer/registry/client.py: WAIT_BUDGET`). The client has already waited, so the tasks do not
    wait again: one line names the server, and what was trained stays on disk."""


class TransientError(RuntimeError):
    """A failure that may pass on its own (a crashed worker process, a simulated crash in tests):
    the Prefect task retries it, and the retry resumes from the latest checkpoint."""


class TokenizerWorkerError(TransientError):
    """A process tokenizing rows died (killed, or out of memory): retried; nothing was cached."""


class DistributedTrainingError(TransientError):
    """A training worker process crashed (retryable: the retry resumes from the latest checkpoint)."""


class BackupCopyError(BackupError, TransientError):
    """A copied file did not read back as written (a flaky disk or object store): retried."""
