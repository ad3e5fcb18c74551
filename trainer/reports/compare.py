"""`llm-trainer compare`: registered versions or runs side by side, the settings that differ,
metrics, aliases and lineage.
"""

from __future__ import annotations

from typing import Any

from trainer.reports.run_report import KEY_SETTINGS, format_metric

# Settings that differ between any two runs without telling anything about the model.
NOT_COMPARED = {"output_dir", "element_name", "version", "running_on", "experiment_name", "registered_model_name"}


COMPARE_METRICS = (
    "eval_loss",
    "eval_perplexity",
    "eval_token_accuracy",
    "eval_exact_match",
    "eval_rouge_l",
    "base_eval_loss",
    "champion_eval_loss",
    "final_train_loss",
    "train_seconds",
    "train_rows",
    "eval_rows",
)


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
            rows.append(
                (
                    name,
                    [
                        format_metric(v)
                        if name not in ("train_rows", "eval_rows")
                        else (str(int(v)) if v is not None else "—")
                        for v in values
                    ],
                )
            )
    for tag in ("data_fingerprint", "parent_version", "promotion_decision"):
        values = [i.get("tags", {}).get(tag, "") for i in items]
        if any(values):
            rows.append((tag, [(v[:12] if tag == "data_fingerprint" else v) or "—" for v in values]))
    return rows


def compare_items(
    model: str | None = None, run_ids: list[str] | None = None, limit: int = 6, experiment_name: str = "llm-trainer"
) -> list[dict[str, Any]]:
    """What `compare` shows: the newest versions of `model`, the given runs, or the newest runs."""
    from trainer import registry

    items = []
    if model:
        versions = registry.model_versions(model, limit)
        for v in versions:
            run = registry.get_run(v.run_id) if v.run_id else None
            items.append(
                {
                    "label": f"v{v.version}",
                    "run_name": run.info.run_name if run else "",
                    "aliases": list(v.aliases),
                    "params": dict(run.data.params) if run else {},
                    "metrics": dict(run.data.metrics) if run else {},
                    "tags": {**(dict(run.data.tags) if run else {}), **dict(v.tags)},
                }
            )
        return items
    runs = [registry.get_run(r) for r in run_ids] if run_ids else registry.latest_runs(experiment_name, limit)
    for run in runs:
        versions = registry.versions_of_run(run.info.run_id)
        aliases = [f"{a} ({v.name} v{v.version})" for v in versions for a in v.aliases] or [
            f"{v.name} v{v.version}" for v in versions
        ]
        items.append(
            {
                "label": run.info.run_id[:8],
                "run_name": run.info.run_name,
                "aliases": aliases,
                "params": dict(run.data.params),
                "metrics": dict(run.data.metrics),
                "tags": dict(run.data.tags),
            }
        )
    return items
