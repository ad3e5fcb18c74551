"""Real peft + bitsandbytes + transformers Trainer on the tiny model, on the CPU."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import DEMO_DATA
from trainer.config.loading import load_settings
from trainer.data.contracts.validate import validate_dataset
from trainer.model.loading import attach_lora, load_base_model, trainable_parameters
from trainer.model.runtime import pick_runtime
from trainer.train.checkpoints import latest_checkpoint
from trainer.train.job import TrainJob
from trainer.train.loop import train

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_lora_still_learns_after_an_eval_forward(tiny_model_dir, bits):
    """bitsandbytes on AVX512-BF16 CPUs switches 4-bit layers to an inference-only kernel after a
    no-grad forward; afterwards LoRA weights would silently get no gradient."""
    model = load_base_model(tiny_model_dir, bits, pick_runtime(bits))
    model = attach_lora(
        model,
        rank=8,
        alpha=16,
        dropout=0.0,
        target_modules=["q_proj", "v_proj", "down_proj"],
        seed=0,
        gradient_checkpointing=False,
    )
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    # Counted as values, not storage: a packed 2- or 4-bit weight is as many parameters as the
    # full-precision weight it stands for (the demo once logged 812,160 for a ~1.2 M model).
    base_values = sum(t.numel() for t in load_file(tiny_model_dir / "model.safetensors").values())
    lora_values = sum(p.numel() for p in lora.values())
    assert trainable_parameters(model) == (lora_values, base_values + lora_values)
    optimizer = torch.optim.AdamW(lora.values(), lr=1e-2)
    batch = torch.randint(10, 500, (2, 32))

    def step():
        before = {n: p.detach().clone() for n, p in lora.items()}
        model.train()
        model(input_ids=batch, labels=batch).loss.backward()
        # lora_B starts at zero, so lora_A's first gradient is zero by design: check lora_B.
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n), (
            "no LoRA gradient"
        )
        optimizer.step()
        optimizer.zero_grad()
        return max((p.detach() - before[n]).abs().max().item() for n, p in lora.items())

    assert step() > 0
    model.eval()
    with torch.no_grad():
        model(input_ids=batch)
    assert step() > 0  # still learning after the eval forward


def _small_settings(tmp_path, **extra):
    sets = ["max_steps=6", "save_every_n_iterations=3", "batch_size=4", f"output_dir={tmp_path}"]
    return load_settings("demo", None, sets + [f"{k}={v}" for k, v in extra.items()])


@pytest.fixture(scope="module")
def examples():
    _, rows = validate_dataset(DEMO_DATA)
    return rows[:48]


def test_train_writes_checkpoints_and_adapter_and_reports_metrics(tmp_path, tiny_model_dir, examples, monkeypatch):
    # The crash hooks these variables once switched on are gone from the product: a real run ignores them.
    monkeypatch.setenv("LLM_TRAINER_CRASH_AT_STEP", "2")
    monkeypatch.setenv("LLM_TRAINER_CRASH_MODE", "kill")
    monkeypatch.setenv("LLM_TRAINER_CRASH_DURING_SAVE_AT_STEP", "3")
    settings = _small_settings(tmp_path)
    reported = []
    result = train(
        TrainJob(settings, tiny_model_dir, examples, tmp_path),
        metrics_sink=lambda m, s: reported.append((s, m)),
        show_progress=False,
    )
    assert result.global_step == 6 and len(result.loss_history) == 6
    assert result.runtime["quantization"].startswith("nf4") and result.runtime["device"] == "cpu"
    assert result.checkpoints == ["checkpoint-3", "checkpoint-6"]
    checkpoint = latest_checkpoint(tmp_path / "checkpoints")
    assert checkpoint.name == "checkpoint-6"
    assert "learning_rate: 0.003" in (checkpoint / "llm_trainer_settings.yaml").read_text()
    assert (Path(result.adapter_dir) / "adapter_model.safetensors").is_file()
    assert [s for s, m in reported if "train_loss" in m] == [1, 2, 3, 4, 5, 6]
    assert 0 < result.trainable_parameters < result.total_parameters
    assert not list(tmp_path.glob(".crashed*"))


def test_same_seed_same_adapter_other_seed_differs(tmp_path, tiny_model_dir, examples):
    def adapter(name, seed):
        out = tmp_path / name
        train(
            TrainJob(_small_settings(out, random_seed=seed, max_steps=3), tiny_model_dir, examples, out),
            show_progress=False,
        )
        return load_file(out / "adapter" / "adapter_model.safetensors")

    a, b, c = adapter("a", 1), adapter("b", 1), adapter("c", 2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_an_incomplete_checkpoint_is_skipped(tmp_path, tiny_model_dir, examples):
    settings = _small_settings(tmp_path)
    train(TrainJob(settings, tiny_model_dir, examples, tmp_path), show_progress=False)
    broken = tmp_path / "checkpoints" / "checkpoint-9"
    broken.mkdir()
    (broken / "trainer_state.json").write_text("{}")  # as if killed mid-write
    assert latest_checkpoint(tmp_path / "checkpoints").name == "checkpoint-6"


def test_training_rows_are_prepared_once_and_reused_by_the_next_attempt(
    tmp_path, tiny_model_dir, examples, monkeypatch
):
    """The tokenized rows live under <state>/prepared/<key>/ (memory-mapped Arrow): a retry, a resume or
    the next run on the same rows and settings maps them instead of tokenizing again, and trains the
    same adapter; another max_seq_length is another key; a folder a killed process left half-written
    (no prepared.json) is prepared again."""
    monkeypatch.setenv("LLM_TRAINER_HOME", str(tmp_path / "state"))

    def run(name: str, **changes):
        out = tmp_path / name
        result = train(
            TrainJob(_small_settings(out, max_steps=2, **changes), tiny_model_dir, examples, out), show_progress=False
        )
        return result, load_file(out / "adapter" / "adapter_model.safetensors")

    (first, a), (second, b) = run("a"), run("b")
    assert (first.rows_prepared, second.rows_prepared) == ("prepared", "reused")
    assert all(torch.equal(a[k], b[k]) for k in a) and first.train_examples == second.train_examples == 48
    prepared = [p for p in (tmp_path / "state" / "prepared").iterdir() if p.is_dir()]
    assert len(prepared) == 1 and (prepared[0] / "prepared.json").is_file()
    (prepared[0] / "prepared.json").unlink()  # as if killed before it was whole
    assert run("c")[0].rows_prepared == "prepared"
    assert run("d", max_seq_length=128)[0].rows_prepared == "prepared"  # other tokens, other key
    assert len([p for p in (tmp_path / "state" / "prepared").iterdir() if p.is_dir()]) == 2
    rows_file = prepared[0] / "rows.arrow"
    rows_file.write_bytes(rows_file.read_bytes()[:-64])  # cut short (a full disk) after it was marked whole
    assert run("e")[0].rows_prepared == "prepared"  # found out by its sha256 and prepared again, never read
    assert run("f")[0].rows_prepared == "reused"


def _prepare_in_a_process(args) -> bool:
    from trainer.model.assets import load_counting_tokenizer
    from trainer.train.prepared import prepare

    tokenizer_dir, examples, root = args
    return prepare(examples, load_counting_tokenizer(tokenizer_dir), tokenizer_dir, 256, False, root).reused


def test_processes_starting_together_prepare_the_rows_once(tmp_path, tiny_model_dir, examples):
    """As the processes of a data-parallel launch do: the first under the lock tokenizes, the others map."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(3) as pool:
        reused = pool.map(_prepare_in_a_process, [(tiny_model_dir, examples, tmp_path / "prepared")] * 3)
    assert sorted(reused) == [False, True, True]


def test_a_view_of_the_validated_table_trains_like_the_list_and_the_sampler_reads_no_row(
    tmp_path, tiny_model_dir, examples, monkeypatch
):
    """What the validate stage hands on (a view of the rows on disk) trains the same adapter as the
    rows in memory; the length-grouped sampler takes the lengths stored with the prepared rows
    instead of reading every row to measure it."""
    from trainer.data.example_table import ExampleWriter
    from trainer.train.prepared import PreparedRows

    writer = ExampleWriter(tmp_path / "rows.arrow")
    writer.add(reversed(examples))
    view = writer.close().select(list(range(len(examples) - 1, -1, -1)))  # the rows in their own order
    assert list(view) == list(examples)
    read: list[int] = []
    original = PreparedRows.__getitem__
    monkeypatch.setattr(PreparedRows, "__getitem__", lambda self, i: read.append(i) or original(self, i))

    def adapter(name: str, rows):
        monkeypatch.setenv("LLM_TRAINER_HOME", str(tmp_path / f"state-{name}"))  # each prepares its own
        out = tmp_path / name
        settings = _small_settings(out, max_steps=2, batching="grouped")
        train(TrainJob(settings, tiny_model_dir, rows, out), show_progress=False)
        return load_file(out / "adapter" / "adapter_model.safetensors")

    a, b = adapter("list", examples), adapter("view", view)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(read) <= 2 * 2 * 8  # 2 runs x 2 steps x the batch's rows: fetched for batches, never all 48 to measure
