"""The run report: the Prefect markdown artifact (also in MLflow as `report/run_report.md`) that ends
every flow run. Pure formatting over plain values.
"""

from __future__ import annotations

import math
from typing import Any

# The settings a reader needs to understand a run, in reading order.
KEY_SETTINGS = (
    "base_model_architecture",
    "quantization_rank",
    "trained_artifact",
    "learning_rate",
    "batch_size",
    "gradient_accumulation_steps",
    "max_steps",
    "num_epochs",
    "lora_rank",
    "lora_alpha",
    "max_seq_length",
    "eval_fraction",
    "eval_data_path",
    "train_subset_fraction",
    "random_seed",
)


METRICS = ("eval_loss", "eval_perplexity", "eval_token_accuracy", "eval_exact_match", "eval_rouge_l")


def table_cell(value: Any) -> str:
    text = "—" if value is None or value == "" else (f"{value:.4f}" if isinstance(value, float) else str(value))
    return text.replace("|", "\\|").replace("\n", " ")


def format_metric(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _delta(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "—"
    return f"{ours - theirs:+.4f}"


def run_markdown(
    *,
    run_name: str,
    mlflow_run_id: str,
    settings: dict[str, Any],
    data: dict[str, Any],
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]],
    champion_version: str | None,
    model: dict[str, Any],
    promotion: str,
    lineage: dict[str, str],
    backup: dict[str, Any],
    training: dict[str, Any],
    samples: list[dict[str, str | float]],
    notes: list[str] = (),
) -> str:
    """The Prefect markdown artifact that ends every flow run."""
    aliases = ", ".join(model.get("aliases", [])) or "none"
    lines = [
        f"# Run `{run_name}`",
        "",
        f"**Model** `{model.get('name')}` version **{model.get('version')}** (aliases: {aliases}). "
        f"{table_cell(promotion)}",
        "",
    ]
    if lineage:
        parent = (
            f"`{lineage.get('parent_model')}` version {lineage.get('parent_version')}"
            if lineage.get("parent_version")
            else f"`{lineage.get('parent_artifact')}`"
        )
        how = "exact resume of" if lineage.get("parent_kind") == "checkpoint" else "warm start from"
        lines += [
            f"**Started from**: {how} {parent}"
            + (f" (MLflow run `{lineage['parent_run_id']}`)" if lineage.get("parent_run_id") else ""),
            "",
        ]
    lines += [
        "## Metrics on the same eval rows",
        "",
        f"{data.get('eval_rows', 0)} eval rows scored"
        + (
            f" (a seeded sample of the {data['eval_rows_held_out']} held out; eval_max_rows)"
            if data.get("eval_rows_held_out", 0) > data.get("eval_rows", 0)
            else ""
        )
        + (
            f", exact match and ROUGE-L on {data['eval_generated_rows']} generated answers"
            if data.get("eval_generated_rows")
            else ""
        )
        + "; lower loss and perplexity, higher token accuracy is better.",
        "",
    ]
    champion_label = f"champion v{champion_version}" if champion_version else "champion"
    header = ["metric", "this run"]
    if "base" in baselines:
        header += ["base model", "vs base"]
    if "champion" in baselines:
        header += [champion_label, f"vs {champion_label}"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in METRICS:
        if name not in metrics:
            continue
        row = [name, format_metric(metrics[name])]
        for label in ("base", "champion"):
            if label in baselines:
                row += [format_metric(baselines[label].get(name)), _delta(metrics[name], baselines[label].get(name))]
        lines.append("| " + " | ".join(row) + " |")
    if not metrics:
        lines.append("| (no eval rows) | — |")
    for note in notes:
        lines += ["", f"> {table_cell(note)}"]
    lines += [
        "",
        "## Training",
        "",
        f"{training.get('global_step')} iterations on {training.get('device')} ({training.get('quantization')}), "
        f"mean train loss {format_metric(training.get('train_loss'))}, {training.get('seconds', 0):.0f} s. Loss "
        "curve: `report/loss_curve.png` in MLflow.",
        "",
        "## Data",
        "",
        f"{data.get('rows_valid')} of {data.get('rows_total')} rows valid ({data.get('rows_quarantined')} "
        "quarantined); "
        f"{data.get('train_rows')} train / {data.get('eval_rows')} eval rows; contract "
        f"`{data.get('contract_version')}`, "
        f"fingerprint `{str(data.get('fingerprint', ''))[:16]}`.",
        "",
        "## Settings that matter",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for key in KEY_SETTINGS:
        value = settings.get(key)
        hidden = (
            value in (None, "")
            or (key == "train_subset_fraction" and value == 1.0)
            or (key == "num_epochs" and settings.get("max_steps"))
            or (key == "eval_fraction" and settings.get("eval_data_path"))
        )
        if not hidden:
            lines.append(f"| `{key}` | {table_cell(f'{value:g}' if isinstance(value, float) else value)} |")
    if samples:
        shown = ("prompt", "reference", "output", "rouge_l", "base_output", "champion_output", "champion_rouge_l")
        columns = [c for c in shown if c in samples[0]]
        lines += ["", "## Sample generations", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for sample in samples:
            cells = [table_cell(v[:160] if isinstance(v := sample.get(c), str) else v) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Where things are",
        "",
        f"- MLflow run `{mlflow_run_id}`",
        f"- Backup: `{backup.get('location')}` ({backup.get('files')} files, {backup.get('mib', 0):.1f} MiB, sha256 "
        "verified)",
    ]
    if backup.get("merged"):
        lines.append(f"- Merged model: `{backup['merged']}`")
    return "\n".join(lines) + "\n"
