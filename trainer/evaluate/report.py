"""What evaluation hands on: the held-out metrics of the new adapter, of the base model and of the
champion on the same rows, and sample generations.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalReport:
    eval_rows: int
    eval_tokens: int
    eval_loss: float | None
    eval_perplexity: float | None
    eval_token_accuracy: float | None
    rows_too_long: int
    samples: list[dict[str, str | float]] = field(default_factory=list)  # per generated answer, with its scores
    # "base" / "champion" -> eval_* metrics on the same rows; empty when not scored.
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    champion_version: str | None = None
    notes: list[str] = field(default_factory=list)  # why a baseline was skipped
    baseline_seconds: float = 0.0
    # The generated answers against the references (trainer.evaluate.answers), when any were generated.
    eval_exact_match: float | None = None
    eval_rouge_l: float | None = None
    eval_generated_rows: int = 0  # rows eval_exact_match / eval_rouge_l were computed on (eval_generation_rows)

    def metrics(self) -> dict[str, float]:
        names = ("eval_loss", "eval_perplexity", "eval_token_accuracy", "eval_exact_match", "eval_rouge_l")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def all_metrics(self) -> dict[str, float]:
        """metrics() plus the baselines as base_eval_loss, champion_eval_loss, ..."""
        flat = dict(self.metrics())
        for label, values in self.baselines.items():
            flat.update({f"{label}_{k}": v for k, v in values.items()})
        return flat

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {**asdict(self), "metrics": self.all_metrics()}
