"""Restore a model from a backup, without MLflow: verify, copy, rebuild a loadable model folder.

1. `verify` the backup: every file of MANIFEST.json is re-read and hashed; a missing or changed
   file stops the restore with BackupError naming it (an incomplete backup is never restored), and
   so does an entry outside the backup (absolute, `..`, a symbolic link): a manifest is untrusted
   data, so nothing is read from outside the backup or written outside the destination.
2. Copy the files to `<destination>/files/` and check each copy's hash again.
3. Rebuild `<destination>/model/`: the same MLflow pyfunc model the registry holds (adapter and
   tokenizer, base reference, and the base weights when the backup carries them; otherwise the base
   the user names with `--base-model`, or the hub model the backup names: a local path recorded in
   the backup is never followed), so
   `mlflow.pyfunc.load_model("<destination>/model")` answers prompts on any machine.
4. With `register`, log it again to the tracking server and register it (tags from the manifest,
   plus `restored_from`); restoring the same backup twice registers it once.

`<destination>/files/checkpoint/` is the final checkpoint: `trained_artifact` pointed at it
continues training exactly where the backed-up run stopped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from trainer.errors import BackupError
from trainer.layout import BACKUP_MANIFEST
from trainer.storage.backup import BackupManifest, check_entry, check_no_link, open_location, sha256_file, verify
from trainer.storage.loadable import NotLoadable, check_loadable

log = logging.getLogger("llm_trainer.restore")


@dataclass
class RestoredModel:
    location: str
    files_dir: Path
    model_dir: Path
    manifest: BackupManifest
    registered_name: str | None = None
    registered_version: str | None = None
    aliases: list[str] = field(default_factory=list)


RESTORE_MARKER = ".llm-trainer-restore"  # first file of files/: even a half restore is recognised as ours


def clear_previous_restore(destination: Path) -> None:
    """Refuse a destination whose `files/` or `model/` is not a previous restore: those two folders are
    replaced, and `--to ~` must never delete a user's own ~/files."""
    if destination.exists() and not destination.is_dir():
        raise BackupError(f"--to {destination}: not a folder; choose an empty destination")
    marks = {"files": RESTORE_MARKER, "model": "MLmodel"}
    for name, marker in marks.items():
        folder = destination / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise BackupError(f"--to {destination}: {folder} is not a folder; choose an empty destination")
        if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).is_file():
            raise BackupError(
                f"--to {destination}: {folder} exists and was not written by a restore (it would be replaced); "
                "choose an empty destination"
            )


def fetch(location: str, manifest: BackupManifest, files_dir: Path) -> Path:
    """Copy every manifest file to `files_dir`, checking each copy against its sha256."""

    fs, root = open_location(location)
    root = root.rstrip("/")
    if files_dir.exists():
        shutil.rmtree(files_dir)  # a previous restore's (clear_previous_restore checked)
    files_dir.mkdir(parents=True)
    (files_dir / RESTORE_MARKER).write_text("written by llm-trainer restore\n", encoding="utf-8")
    for relative, entry in manifest.files.items():
        # Checked again right before reading: nothing outside the backup is read, nothing outside
        # files_dir is written (verify checked the same, but the backup may have changed since).
        check_no_link(fs, root, check_entry(location, relative), location)
        target = files_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f"{root}/{relative}", str(target))
        if sha256_file(target) != entry["sha256"]:
            raise BackupError(f"{location}: {relative} changed while it was being restored")
    (files_dir / BACKUP_MANIFEST).write_text(
        json.dumps({"location": manifest.location, "metadata": manifest.metadata, "files": manifest.files}, indent=2),
        encoding="utf-8",
    )
    return files_dir


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _check_reference(reference: dict) -> None:
    """The values a restore uses from base_reference.json, of the types the pipeline writes."""
    checks = {
        "quantization_bits": lambda v: v is None or (type(v) is int and v in (2, 4, 8)),
        "max_new_tokens": lambda v: v is None or (type(v) is int and 1 <= v <= 2048),
        "hub_id": lambda v: v is None or isinstance(v, str),
        "path": lambda v: v is None or isinstance(v, str),
    }
    for key, ok in checks.items():
        if not ok(reference.get(key)):
            raise BackupError(
                f"model/base_reference.json in the backup: {key} is {str(reference.get(key))[:60]!r}, not a value "
                "the pipeline writes"
            )


def base_for(files_dir: Path, base_model: Path | None = None) -> tuple[Path | None, dict]:
    """The base weights to serve the adapter on: the ones inside the backup, else the base model the
    user named (`--base-model`), else the hub model the backup names (loaded by its id from the Hugging
    Face cache or hub, as any base is). A local path recorded inside the backup is data, not an
    instruction: a restore never follows it out of the backup."""
    reference_file = files_dir / "model" / "base_reference.json"
    reference: dict = {}
    if reference_file.is_file():
        try:
            reference = json.loads(reference_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BackupError("model/base_reference.json in the backup is not valid JSON") from None
        if not isinstance(reference, dict):
            raise BackupError("model/base_reference.json in the backup is not a JSON object")
        _check_reference(reference)
    if (files_dir / "base_model" / "config.json").is_file():
        return files_dir / "base_model", reference
    if base_model is not None:
        if not (Path(base_model) / "config.json").is_file():
            raise BackupError(f"--base-model {base_model}: no config.json there; not a model folder")
        return Path(base_model), reference
    hub_id = reference.get("hub_id")
    if isinstance(hub_id, str) and HUB_ID.match(hub_id):
        return None, reference  # served from the Hugging Face cache / hub by its id
    recorded = reference.get("path")
    raise BackupError(
        "the backup holds no base model weights and names no hub model; its base was a local folder "
        f"({recorded if isinstance(recorded, str) else 'not recorded'}), which a restore does not follow from a "
        "file inside the backup: pass --base-model PATH to rebuild it on a base model of your choosing"
    )


def restore(
    location: str,
    destination: Path,
    register: bool = False,
    name: str | None = None,
    experiment_name: str = "llm-trainer",
    base_model: Path | None = None,
) -> RestoredModel:
    from trainer import registry

    destination = Path(destination).resolve()
    clear_previous_restore(destination)  # before anything is read or written
    manifest = verify(location)
    # Built in a staging folder beside the result and moved into place once whole: an interrupted or
    # failed restore (SIGTERM, a changed file, a refused base) leaves no files/ or model/ that look
    # restored, and a previous restore there stays as it was until the new one is complete.
    for leftover in destination.glob(".restore-staging-*"):  # a killed restore's (SIGKILL runs no finally)
        shutil.rmtree(leftover, ignore_errors=True)
    staging = destination / f".restore-staging-{os.getpid()}"
    try:
        files_dir = fetch(location, manifest, staging / "files")
        adapter_dir = files_dir / "adapter"
        if not (adapter_dir / "adapter_config.json").is_file():
            raise BackupError(f"{location}: no adapter/ in this backup; nothing to restore a model from")
        base_dir, reference = base_for(files_dir, base_model)
        try:
            check_loadable(base_dir, adapter_dir)
        except NotLoadable as exc:
            raise BackupError(f"{location}: the restored model would not load: {exc}; not restored") from None
        bits = reference.get("quantization_bits")
        max_new_tokens = int(reference.get("max_new_tokens") or 64)
        registry.save_adapter_model(
            staging / "model", adapter_dir, base_dir, reference.get("hub_id"), bits, max_new_tokens
        )
        for part in ("model", "files"):  # model/ out first, in last: a half swap has no model/
            if (destination / part).exists():
                shutil.rmtree(destination / part)
        (staging / "files").rename(destination / "files")
        (staging / "model").rename(destination / "model")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files_dir, model_dir = destination / "files", destination / "model"
    if base_dir is not None and staging in base_dir.parents:
        base_dir = files_dir / base_dir.relative_to(staging / "files")
    restored = RestoredModel(location=location, files_dir=files_dir, model_dir=model_dir, manifest=manifest)
    if register:
        _register(restored, files_dir / "adapter", base_dir, reference, bits, max_new_tokens, name, experiment_name)
    return restored


def _register(
    restored: RestoredModel,
    adapter_dir: Path,
    base_dir: Path | None,
    reference: dict,
    bits,
    max_new_tokens: int,
    name: str | None,
    experiment_name: str,
) -> None:
    from trainer import registry
    from trainer.registry.promotion import CHAMPION, move_alias

    metadata = restored.manifest.metadata
    name = name or str(metadata.get("model") or "")
    if not name:
        raise BackupError(f"{restored.location}: the manifest names no model; pass --name")
    adapter_sha = str(restored.manifest.files.get("adapter/adapter_model.safetensors", {}).get("sha256", ""))
    version = registry.find_restored_version(name, restored.location, adapter_sha)
    if version is None:
        backup_name = restored.location.rstrip("/").rsplit("/", 1)[-1]
        run_id = registry.create_run(
            str(metadata.get("experiment_name") or experiment_name),
            f"restore-{backup_name}",
            {
                "llm_trainer.kind": "restore",
                "restored_from": restored.location,
                "base_model_architecture": metadata.get("base_model_architecture", ""),
            },
        )
        try:
            version = str(
                registry.log_adapter_model(
                    run_id, adapter_dir, base_dir, reference.get("hub_id"), bits, max_new_tokens, name
                ).version
            )
        except BaseException as exc:  # SIGTERM or a failure: the run reads what happened, not RUNNING
            registry.finish_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        keep = (
            "data_fingerprint",
            "contract_version",
            "settings_hash",
            "base_model_architecture",
            "eval_loss",
            "eval_perplexity",
            "eval_token_accuracy",
            "parent_model",
            "parent_version",
            "parent_run_id",
        )
        registry.set_version_tags(
            name,
            version,
            {
                **{k: metadata[k] for k in keep if metadata.get(k) not in (None, "")},
                "restored_from": restored.location,
                "adapter_sha256": adapter_sha,
                "restored_from_version": metadata.get("version", ""),
                "restored_from_run": metadata.get("mlflow_run_id", ""),
            },
        )
        registry.finish_run(run_id)
        if registry.get_alias_version(name, CHAMPION) is None:
            # An empty registry (the store was lost): the restored model is all there is to serve.
            move_alias(
                name, version, CHAMPION, "restore", f"restored from {restored.location}; the model had no champion"
            )
    restored.registered_name, restored.registered_version = name, version
    restored.aliases = list(registry.model_version(name, version).aliases)
