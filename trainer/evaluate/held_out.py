"""Held-out evaluation: loss, perplexity and token accuracy on the answer tokens, plus samples.

The model is loaded from the saved adapter folder exactly as it will be served (same base, same
quantization), so evaluation also proves the saved adapter is complete. On the same loaded base and
the same rows (tokenized by the same tokenizer), it can also score the base model alone (adapter
disabled) and the current champion's adapter, so a run shows what fine-tuning gained and whether
it beats what is in production.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from trainer.config.settings import Settings
from trainer.data.formats import Example
from trainer.evaluate.answers import AnswerRow, answer_rows, score_answers
from trainer.evaluate.generation import generate
from trainer.evaluate.report import EvalReport
from trainer.evaluate.scoring import score, score_metrics
from trainer.model.loading import load_adapter, load_base_model, load_tokenizer
from trainer.model.runtime import pick_runtime

log = logging.getLogger("llm_trainer.evaluation")


def evaluate(
    settings: Settings,
    base_model_dir: Path,
    adapter_dir: Path,
    eval_examples: list[Example],
    *,
    score_base: bool = False,
    champion_adapter_dir: Path | None = None,
    champion_version: str | None = None,
) -> EvalReport:
    """Score the trained adapter on `eval_examples`; with `score_base` / `champion_adapter_dir` also
    the base model alone and the champion's adapter, on the same loaded base and the same rows."""
    if not eval_examples:
        log.warning("No held-out rows (eval_fraction=%s): evaluation skipped", settings.eval_fraction)
        return EvalReport(0, 0, None, None, None, 0)
    runtime = pick_runtime(settings.quantization_bits)
    log.info("Evaluating %d held-out rows on %s", len(eval_examples), runtime.describe())
    tokenizer = load_tokenizer(adapter_dir, settings.trust_remote_code)
    model = load_base_model(base_model_dir, settings.quantization_bits, runtime, settings.trust_remote_code)
    model = load_adapter(model, adapter_dir, trainable=False)
    loss, accuracy, tokens, too_long = score(
        model,
        tokenizer,
        eval_examples,
        settings.max_seq_length,
        settings.batch_size,
        settings.chunked_loss,
        "scoring the adapter",
    )
    rows = answer_rows(eval_examples, settings.eval_generation_rows, settings.random_seed)
    answers = generate(model, tokenizer, [r.prompt for r in rows], settings.max_new_tokens, "generating (adapter)")
    means, scores = score_answers(answers, [r.reference for r in rows])
    samples = [
        {"prompt": r.prompt[-1]["content"], "reference": r.reference, "output": answer, **row_scores}
        for r, answer, row_scores in zip(rows, answers, scores, strict=True)
    ]
    report = EvalReport(
        eval_rows=len(eval_examples),
        eval_tokens=tokens,
        eval_loss=loss,
        eval_perplexity=math.exp(loss) if loss == loss and loss < 50 else None,
        eval_token_accuracy=accuracy,
        rows_too_long=too_long,
        samples=samples,
        eval_exact_match=means.get("eval_exact_match"),
        eval_rouge_l=means.get("eval_rouge_l"),
        eval_generated_rows=len(rows),
    )
    if score_base or champion_adapter_dir is not None:
        _score_baselines(
            report,
            settings,
            model,
            tokenizer,
            eval_examples,
            rows,
            score_base,
            champion_adapter_dir,
            champion_version,
        )
    return report


def _score_baselines(
    report: EvalReport,
    settings: Settings,
    model,
    tokenizer,
    examples: list[Example],
    rows: list[AnswerRow],
    score_base: bool,
    champion_adapter_dir: Path | None,
    champion_version: str | None,
) -> None:
    """The base alone (adapter disabled) and the champion's adapter, on the already loaded base."""
    started = time.perf_counter()

    def run(label: str) -> None:
        metrics = score_metrics(
            model,
            tokenizer,
            examples,
            settings.max_seq_length,
            settings.batch_size,
            settings.chunked_loss,
            f"scoring the {label}",
        )
        answers = generate(model, tokenizer, [r.prompt for r in rows], settings.max_new_tokens, f"generating ({label})")
        means, scores = score_answers(answers, [r.reference for r in rows])
        report.baselines[label] = {**metrics, **means}
        for sample, answer, row_scores in zip(report.samples, answers, scores, strict=True):
            sample[f"{label}_output"] = answer
            sample.update({f"{label}_{k}": v for k, v in row_scores.items()})

    if score_base:
        with model.disable_adapter():
            run("base")
    if champion_adapter_dir is not None:
        try:
            model.load_adapter(str(champion_adapter_dir), adapter_name="champion", is_trainable=False)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:  # another base, a broken file
            report.notes.append(
                f"champion version {champion_version} not scored: its adapter does not load on this base "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
            )
        else:
            model.set_adapter("champion")
            run("champion")
            report.champion_version = champion_version
    report.baseline_seconds = time.perf_counter() - started
    log.info(
        "Baselines on the same %d rows: %s (%.1fs)",
        len(examples),
        "; ".join(f"{k} eval_loss={v.get('eval_loss', float('nan')):.4f}" for k, v in report.baselines.items())
        or "none",
        report.baseline_seconds,
    )
