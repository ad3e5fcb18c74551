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
from dataclasses import dataclass, field
from pathlib import Path

from trainer.data import Example
from trainer.model import load_adapter, load_base_model, load_tokenizer, pick_runtime
from trainer.settings import Settings
from trainer.tokens import IGNORE_INDEX, render, tokenize_examples

log = logging.getLogger("llm_trainer.evaluation")


@dataclass
class EvalReport:
    eval_rows: int
    eval_tokens: int
    eval_loss: float | None
    eval_perplexity: float | None
    eval_token_accuracy: float | None
    rows_too_long: int
    samples: list[dict[str, str]] = field(default_factory=list)
    # "base" / "champion" -> eval_* metrics on the same rows; empty when not scored.
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    champion_version: str | None = None
    notes: list[str] = field(default_factory=list)  # why a baseline was skipped
    baseline_seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        names = ("eval_loss", "eval_perplexity", "eval_token_accuracy")
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


def score(model, tokenizer, examples: list[Example], max_seq_length: int, batch_size: int) -> tuple[float, float, int, int]:
    """Mean token loss and accuracy over the answer tokens of `examples` (token-weighted)."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    tokenized, too_long = tokenize_examples(tokenizer, examples, max_seq_length)
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    device = next(model.parameters()).device
    total_loss, correct, counted = 0.0, 0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(tokenized), batch_size):
            batch = collate([{"input_ids": t.input_ids, "labels": t.labels} for t in tokenized[start : start + batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            # use_cache=False: a model with the cache on ignores packed-sequence boundaries.
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits.float()
            shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
            mask = shift_labels != IGNORE_INDEX
            losses = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
            )
            total_loss += losses.item()
            correct += ((shift_logits.argmax(-1) == shift_labels) & mask).sum().item()
            counted += mask.sum().item()
    if counted == 0:
        return float("nan"), float("nan"), 0, too_long
    return total_loss / counted, correct / counted, counted, too_long


def score_metrics(model, tokenizer, examples: list[Example], max_seq_length: int, batch_size: int) -> dict[str, float]:
    """score() as the eval_* metrics dict; restores the model's train/eval mode."""
    was_training = model.training
    try:
        loss, accuracy, tokens, _ = score(model, tokenizer, examples, max_seq_length, batch_size)
    finally:
        model.train(was_training)
    if tokens == 0:
        return {}
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50)), "eval_token_accuracy": accuracy}


def generate(model, tokenizer, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
    """Greedy answers to chat prompts (the conversation up to the assistant's turn)."""
    import torch

    device = next(model.parameters()).device
    answers = []
    model.eval()
    for messages in prompts:
        text = render(tokenizer, messages, add_generation_prompt=True)
        inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(device)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return answers


def evaluate(settings: Settings, base_model_dir: Path, adapter_dir: Path, eval_examples: list[Example], *,
             score_base: bool = False, champion_adapter_dir: Path | None = None, champion_version: str | None = None) -> EvalReport:
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
    loss, accuracy, tokens, too_long = score(model, tokenizer, eval_examples, settings.max_seq_length, settings.batch_size)
    samples = []
    chats = [e for e in eval_examples if e.messages][: settings.num_sample_generations]
    if chats:
        prompts = [e.messages[:-1] for e in chats]
        outputs = generate(model, tokenizer, prompts, settings.max_new_tokens)
        for example, prompt, output in zip(chats, prompts, outputs):
            samples.append({"prompt": prompt[-1]["content"], "reference": example.messages[-1]["content"], "output": output})
    report = EvalReport(
        eval_rows=len(eval_examples),
        eval_tokens=tokens,
        eval_loss=loss,
        eval_perplexity=math.exp(loss) if loss == loss and loss < 50 else None,
        eval_token_accuracy=accuracy,
        rows_too_long=too_long,
        samples=samples,
    )
    if score_base or champion_adapter_dir is not None:
        _score_baselines(report, settings, model, tokenizer, eval_examples, [e.messages[:-1] for e in chats],
                         score_base, champion_adapter_dir, champion_version)
    return report


def _score_baselines(report: EvalReport, settings: Settings, model, tokenizer, examples: list[Example], prompts: list,
                     score_base: bool, champion_adapter_dir: Path | None, champion_version: str | None) -> None:
    """The base alone (adapter disabled) and the champion's adapter, on the already loaded base."""
    started = time.perf_counter()

    def run(label: str) -> None:
        report.baselines[label] = score_metrics(model, tokenizer, examples, settings.max_seq_length, settings.batch_size)
        for sample, output in zip(report.samples, generate(model, tokenizer, prompts, settings.max_new_tokens) if prompts else []):
            sample[f"{label}_output"] = output

    if score_base:
        with model.disable_adapter():
            run("base")
    if champion_adapter_dir is not None:
        try:
            model.load_adapter(str(champion_adapter_dir), adapter_name="champion", is_trainable=False)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:  # another base, a broken file
            report.notes.append(f"champion version {champion_version} not scored: its adapter does not load on this base "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})")
        else:
            model.set_adapter("champion")
            run("champion")
            report.champion_version = champion_version
    report.baseline_seconds = time.perf_counter() - started
    log.info("Baselines on the same %d rows: %s (%.1fs)", len(examples),
             "; ".join(f"{k} eval_loss={v.get('eval_loss', float('nan')):.4f}" for k, v in report.baselines.items()) or "none",
             report.baseline_seconds)
