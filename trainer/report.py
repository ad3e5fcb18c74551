"""What a person looks at after a run: the run report (markdown), the loss curve (PNG) and the
comparison of runs or registered versions (`llm-trainer compare`).

Pure formatting over plain values; the callers fetch them (MLflow via `trainer.tracking`) and
publish them (a Prefect artifact, an MLflow artifact, a terminal table).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# The settings a reader needs to understand a run, in reading order.
KEY_SETTINGS = (
    "base_model_architecture", "quantization_rank", "trained_artifact", "learning_rate", "batch_size",
    "gradient_accumulation_steps", "max_steps", "num_epochs", "lora_rank", "lora_alpha", "max_seq_length",
    "eval_fraction", "eval_data_path", "train_subset_fraction", "random_seed",
)
METRICS = ("eval_loss", "eval_perplexity", "eval_token_accuracy")
# Settings that differ between any two runs without telling anything about the model.
NOT_COMPARED = {"output_dir", "element_name", "version", "running_on", "experiment_name", "registered_model_name"}
COMPARE_METRICS = ("eval_loss", "eval_perplexity", "eval_token_accuracy", "base_eval_loss", "champion_eval_loss",
                   "final_train_loss", "train_seconds", "train_rows", "eval_rows")


def _cell(value: Any) -> str:
    text = "—" if value is None or value == "" else (f"{value:.4f}" if isinstance(value, float) else str(value))
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt(value: float | None) -> str:
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
    samples: list[dict[str, str]],
    notes: list[str] = (),
) -> str:
    """The Prefect markdown artifact that ends every flow run."""
    aliases = ", ".join(model.get("aliases", [])) or "none"
    lines = [
        f"# Run `{run_name}`",
        "",
        f"**Model** `{model.get('name')}` version **{model.get('version')}** (aliases: {aliases}). {_cell(promotion)}",
        "",
    ]
    if lineage:
        parent = f"`{lineage.get('parent_model')}` version {lineage.get('parent_version')}" if lineage.get("parent_version") else f"`{lineage.get('parent_artifact')}`"
        how = "exact resume of" if lineage.get("parent_kind") == "checkpoint" else "warm start from"
        lines += [f"**Started from**: {how} {parent}" + (f" (MLflow run `{lineage['parent_run_id']}`)" if lineage.get("parent_run_id") else ""), ""]
    lines += ["## Metrics on the same eval rows", "",
              f"{data.get('eval_rows', 0)} eval rows; lower loss and perplexity, higher token accuracy is better.", ""]
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
        row = [name, _fmt(metrics[name])]
        for label in ("base", "champion"):
            if label in baselines:
                row += [_fmt(baselines[label].get(name)), _delta(metrics[name], baselines[label].get(name))]
        lines.append("| " + " | ".join(row) + " |")
    if not metrics:
        lines.append("| (no eval rows) | — |")
    for note in notes:
        lines += ["", f"> {_cell(note)}"]
    lines += ["", "## Training", "",
              f"{training.get('global_step')} iterations on {training.get('device')} ({training.get('quantization')}), "
              f"mean train loss {_fmt(training.get('train_loss'))}, {training.get('seconds', 0):.0f} s. Loss curve: `report/loss_curve.png` in MLflow.",
              "", "## Data", "",
              f"{data.get('rows_valid')} of {data.get('rows_total')} rows valid ({data.get('rows_quarantined')} quarantined); "
              f"{data.get('train_rows')} train / {data.get('eval_rows')} eval rows; contract `{data.get('contract_version')}`, "
              f"fingerprint `{str(data.get('fingerprint', ''))[:16]}`.", "",
              "## Settings that matter", "", "| setting | value |", "|---|---|"]
    for key in KEY_SETTINGS:
        value = settings.get(key)
        hidden = (value in (None, "") or (key == "train_subset_fraction" and value == 1.0)
                  or (key == "num_epochs" and settings.get("max_steps")) or (key == "eval_fraction" and settings.get("eval_data_path")))
        if not hidden:
            lines.append(f"| `{key}` | {_cell(f'{value:g}' if isinstance(value, float) else value)} |")
    if samples:
        columns = [c for c in ("prompt", "reference", "output", "base_output", "champion_output") if c in samples[0]]
        lines += ["", "## Sample generations", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for sample in samples:
            lines.append("| " + " | ".join(_cell(str(sample.get(c, ""))[:160]) for c in columns) + " |")
    lines += ["", "## Where things are", "",
              f"- MLflow run `{mlflow_run_id}`",
              f"- Backup: `{backup.get('location')}` ({backup.get('files')} files, {backup.get('mib', 0):.1f} MiB, sha256 verified)"]
    if backup.get("merged"):
        lines.append(f"- Merged model: `{backup['merged']}`")
    return "\n".join(lines) + "\n"


def loss_curve(path: Path, train: list[tuple[int, float]], evals: list[tuple[int, float]],
               baselines: dict[str, float], title: str) -> Path:
    """Train and eval loss over iterations, with the base and champion eval loss as reference lines."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in workers and threads
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if train:
            ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", color="tab:blue", linewidth=1.2)
        if evals:
            ax.plot([s for s, _ in evals], [v for _, v in evals], label="eval loss", color="tab:orange", marker="o", linewidth=1.5)
        styles = {"base": ("base model (eval)", "tab:gray"), "champion": ("champion (eval)", "tab:green")}
        for label, value in baselines.items():
            if value is not None and not math.isnan(value):
                text, color = styles.get(label, (label, "black"))
                ax.axhline(value, linestyle="--", color=color, linewidth=1, label=f"{text} {value:.3f}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (answer tokens)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def comparison_rows(items: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Rows of `llm-trainer compare`: identity, aliases, the settings that differ, metrics, lineage.

    Each item: {"label", "run_name", "aliases", "params", "metrics", "tags"}; one column per item."""
    rows: list[tuple[str, list[str]]] = [
        ("run", [i.get("run_name") or "—" for i in items]),
        ("aliases", [", ".join(i.get("aliases") or []) or "—" for i in items]),
    ]
    params = [i.get("params", {}) for i in items]
    keys = sorted({k for p in params for k in p} - NOT_COMPARED)
    ordered = [k for k in KEY_SETTINGS if k in keys] + [k for k in keys if k not in KEY_SETTINGS]
    differing = [k for k in ordered if len({p.get(k, "") for p in params}) > 1]
    rows += [(k, [p.get(k, "") or "—" for p in params]) for k in differing]
    if len(items) > 1 and not differing:
        rows.append(("(settings)", ["identical"] * len(items)))
    for name in COMPARE_METRICS:
        values = [i.get("metrics", {}).get(name) for i in items]
        if any(v is not None for v in values):
            rows.append((name, [_fmt(v) if name not in ("train_rows", "eval_rows") else (str(int(v)) if v is not None else "—") for v in values]))
    for tag in ("data_fingerprint", "parent_version", "promotion_decision"):
        values = [i.get("tags", {}).get(tag, "") for i in items]
        if any(values):
            rows.append((tag, [(v[:12] if tag == "data_fingerprint" else v) or "—" for v in values]))
    return rows


def compare_items(model: str | None = None, run_ids: list[str] | None = None, limit: int = 6,
                  experiment_name: str = "llm-trainer") -> list[dict[str, Any]]:
    """What `compare` shows: the newest versions of `model`, the given runs, or the newest runs."""
    from trainer import tracking

    items = []
    if model:
        versions = tracking.model_versions(model, limit)
        for v in versions:
            run = tracking.get_run(v.run_id) if v.run_id else None
            items.append({
                "label": f"v{v.version}", "run_name": run.info.run_name if run else "", "aliases": list(v.aliases),
                "params": dict(run.data.params) if run else {}, "metrics": dict(run.data.metrics) if run else {},
                "tags": {**(dict(run.data.tags) if run else {}), **dict(v.tags)},
            })
        return items
    runs = [tracking.get_run(r) for r in run_ids] if run_ids else tracking.latest_runs(experiment_name, limit)
    for run in runs:
        versions = tracking.versions_of_run(run.info.run_id)
        aliases = [f"{a} ({v.name} v{v.version})" for v in versions for a in v.aliases] or [f"{v.name} v{v.version}" for v in versions]
        items.append({
            "label": run.info.run_id[:8], "run_name": run.info.run_name, "aliases": aliases,
            "params": dict(run.data.params), "metrics": dict(run.data.metrics), "tags": dict(run.data.tags),
        })
    return items
