"""The loss curve (PNG): train and eval loss over iterations, with the base model's and the
champion's eval loss as reference lines.
"""

from __future__ import annotations

import math
from pathlib import Path


def loss_curve(
    path: Path, train: list[tuple[int, float]], evals: list[tuple[int, float]], baselines: dict[str, float], title: str
) -> Path:
    """Train and eval loss over iterations, with the base and champion eval loss as reference lines."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in workers and threads
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if train:
            ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", color="tab:blue", linewidth=1.2)
        if evals:
            ax.plot(
                [s for s, _ in evals],
                [v for _, v in evals],
                label="eval loss",
                color="tab:orange",
                marker="o",
                linewidth=1.5,
            )
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
