"""What a run's backup holds: the files and folders of a finished run, each under a label with a
line saying what it is (written into MANIFEST.json as `contents`), and the metadata that lets a
backup be restored and re-registered without MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.redact import redact
from trainer.registry.pyfunc import EMBED_BASE_MAX_BYTES
from trainer.train.checkpoints import latest_checkpoint
from trainer.train.job import TrainResult

CONTENTS = {
    "adapter": "the LoRA adapter (weights, config) with the tokenizer files: what the registered model serves",
    "checkpoint": "the final training checkpoint (optimizer, scheduler, RNG state): "
    "trained_artifact continues exactly from it",
    "settings": "the run's settings (settings.yaml)",
    "eval": "eval_report.json (metrics, base and champion baselines, samples) and loss_curve.png",
    "data": "the data contract report and quarantine file",
    "model": "base_reference.json: which base the adapter belongs on, and its quantization",
    "base_model": "the base model weights and tokenizer (only when under 200 MB)",
    "merged": "the adapter merged into the full-precision base (export_merged)",
}


def backup_sources(
    settings: Settings,
    dataset: DatasetSnapshot,
    trained: TrainResult,
    assets: ModelAssets | None = None,
    merged: str | None = None,
) -> dict[str, Path]:
    """label -> file or folder to back up; writes the run's settings.yaml and base_reference.json first."""
    output_dir = Path(dataset.output_dir)
    (output_dir / "settings").mkdir(parents=True, exist_ok=True)
    (output_dir / "settings" / "settings.yaml").write_text(redact(settings.to_yaml()), encoding="utf-8")
    sources = {
        "adapter": Path(trained.adapter_dir),
        "settings": output_dir / "settings" / "settings.yaml",
        "data": Path(dataset.report_path).parent,
    }
    checkpoint = latest_checkpoint(output_dir / "checkpoints")
    if checkpoint is not None:
        sources["checkpoint"] = checkpoint
    if (output_dir / "eval").is_dir():
        sources["eval"] = output_dir / "eval"
    if assets is not None:
        reference = output_dir / "model" / "base_reference.json"
        reference.parent.mkdir(parents=True, exist_ok=True)
        reference.write_text(
            json.dumps(
                {
                    "path": assets.base_model_dir,
                    "hub_id": assets.hub_id,
                    "quantization_bits": settings.quantization_bits,
                    "max_new_tokens": settings.max_new_tokens,
                    "base_model_architecture": settings.base_model_architecture,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        sources["model"] = reference
        base = Path(assets.base_model_dir)
        if sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) <= EMBED_BASE_MAX_BYTES:
            sources["base_model"] = base
    if merged:
        sources["merged"] = Path(merged)
    return sources


def backup_metadata(
    settings: Settings,
    dataset: DatasetSnapshot,
    trained: TrainResult,
    model: dict[str, Any],
    settings_hash: str,
    assets: ModelAssets | None = None,
    report: EvalReport | None = None,
    checkpoint: Path | None = None,
) -> dict[str, Any]:
    """What MANIFEST.json says about the run: the model and version, lineage, data and metrics."""
    return {
        **model,
        "mlflow_run_id": dataset.run_id,
        "run_name": dataset.run_name,
        "experiment_name": settings.experiment_name,
        "base_model_architecture": settings.base_model_architecture,
        "data_fingerprint": dataset.fingerprint,
        "contract_version": dataset.contract_version,
        "settings_hash": settings_hash,
        "global_step": trained.global_step,
        "checkpoint": checkpoint.name if checkpoint is not None else "",
        **(assets.lineage if assets is not None else {}),
        **({k: round(v, 6) for k, v in report.all_metrics().items()} if report is not None else {}),
    }
