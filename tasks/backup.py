from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.common import retry_transient
from tasks.register import RegisteredModel
from tasks.validate import DatasetSnapshot
from trainer import state, tracking
from trainer.assets import ModelAssets
from trainer.backup import BackupManifest, backup
from trainer.evaluation import EvalReport
from trainer.redact import redact
from trainer.settings import Settings
from trainer.tracking import EMBED_BASE_MAX_BYTES
from trainer.training import TrainResult, latest_checkpoint

CONTENTS = {
    "adapter": "the LoRA adapter (weights, config) with the tokenizer files: what the registered model serves",
    "checkpoint": "the final training checkpoint (optimizer, scheduler, RNG state): trained_artifact continues exactly from it",
    "settings": "the run's settings (settings.yaml)",
    "eval": "eval_report.json (metrics, base and champion baselines, samples) and loss_curve.png",
    "data": "the data contract report and quarantine file",
    "model": "base_reference.json: which base the adapter belongs on, and its quantization",
    "base_model": "the base model weights and tokenizer (only when under 200 MB)",
    "merged": "the adapter merged into the full-precision base (export_merged)",
}


# Transient errors (a flaky object store, a copy that failed verification) are retried; a retry
# verifies a finished backup of this run instead of copying again, and redoes an unfinished one.
@task(name="backup", retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=retry_transient, cache_policy=NONE)
def backup_artifacts(settings: Settings, dataset: DatasetSnapshot, trained: TrainResult, registered: RegisteredModel,
                     assets: ModelAssets | None = None, report: EvalReport | None = None, merged: str | None = None) -> BackupManifest:
    """Copy adapter, tokenizer, final checkpoint, settings, eval and data reports (and the base when
    small, the merged model when exported) to artifact_backup_save_path, with a verified MANIFEST.json."""
    logger = get_run_logger()
    output_dir = Path(dataset.output_dir)
    destination = settings.artifact_backup_save_path or str(state.backups_dir())
    (output_dir / "settings").mkdir(parents=True, exist_ok=True)
    (output_dir / "settings" / "settings.yaml").write_text(redact(settings.to_yaml()), encoding="utf-8")
    sources = {"adapter": Path(trained.adapter_dir), "settings": output_dir / "settings" / "settings.yaml",
               "data": Path(dataset.report_path).parent}
    checkpoint = latest_checkpoint(output_dir / "checkpoints")
    if checkpoint is not None:
        sources["checkpoint"] = checkpoint
    if (output_dir / "eval").is_dir():
        sources["eval"] = output_dir / "eval"
    if assets is not None:
        reference = output_dir / "model" / "base_reference.json"
        reference.parent.mkdir(parents=True, exist_ok=True)
        reference.write_text(json.dumps({
            "path": assets.base_model_dir, "hub_id": assets.hub_id, "quantization_bits": settings.quantization_bits,
            "max_new_tokens": settings.max_new_tokens, "base_model_architecture": settings.base_model_architecture,
        }, indent=2), encoding="utf-8")
        sources["model"] = reference
        base = Path(assets.base_model_dir)
        if sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) <= EMBED_BASE_MAX_BYTES:
            sources["base_model"] = base
    if merged:
        sources["merged"] = Path(merged)
    metadata = {
        "model": registered.name, "version": registered.version, "aliases": ",".join(registered.aliases),
        "mlflow_run_id": dataset.run_id, "run_name": dataset.run_name, "experiment_name": settings.experiment_name,
        "base_model_architecture": settings.base_model_architecture, "data_fingerprint": dataset.fingerprint,
        "contract_version": dataset.contract_version, "settings_hash": tracking.settings_hash(settings),
        "global_step": trained.global_step, "checkpoint": checkpoint.name if checkpoint is not None else "",
        **(assets.lineage if assets is not None else {}),
        **({k: round(v, 6) for k, v in report.all_metrics().items()} if report is not None else {}),
    }
    manifest = backup(sources, destination, dataset.run_name, metadata=metadata, contents={k: CONTENTS[k] for k in sources})
    tracking.set_tags(dataset.run_id, {"backup_location": manifest.location})
    tracking.set_version_tags(registered.name, registered.version, {"backup_location": manifest.location})
    logger.info("Backed up %d files (%.1f MiB) to %s, MANIFEST.json verified",
                len(manifest.files), manifest.total_bytes / 2**20, redact(manifest.location))
    return manifest
