"""Tokenizing in worker processes gives exactly what one process gives, and the workers never
outlive what started them: Ctrl-C, a SIGKILLed parent, a worker that dies.

The rows are a seeded mix of every shape tokenizing knows (system prompts a template folds, turns a
template refuses, tool calls, plain-text windows, rows over max_seq_length, non-ASCII text), with the
published chat templates of two model families on a tokenizer loaded through from_pretrained."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.templates import FOLDS_SYSTEM, TOOLS, load_template_tokenizer, template_folder
from trainer.data.contracts.validate import validate_dataset
from trainer.data.formats import Example
from trainer.errors import TokenizerWorkerError, TransientError
from trainer.model.token_pool import BLOCK_ROWS, PARALLEL_MIN_ROWS, TokenPool, processes_for
from trainer.model.tokens import tokenize_rows

WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "Paris",
    "42",
    "naïve",
    "café",
    "東京",
    "✓",
    "weather",
    "city",
    "add",
    "numbers",
    "why",
    "because",
]


def _text(rng: random.Random, most: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, most)))


def _messages(rng: random.Random) -> tuple[list[dict], list | None]:
    shape = rng.randrange(5)
    messages = [{"role": "system", "content": _text(rng, 8)}] if shape in (1, 4) else []
    if shape == 2:  # two user turns in a row: templates that demand alternation refuse it
        return [
            *messages,
            {"role": "user", "content": _text(rng, 5)},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": _text(rng, 5)},
        ], None
    if shape == 3:  # a tool call and its result
        call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": rng.choice(WORDS)}}}
        return [
            {"role": "user", "content": _text(rng, 6)},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": _text(rng, 4), "name": "get_weather"},
            {"role": "assistant", "content": _text(rng, 6)},
        ], TOOLS
    for _ in range(rng.randint(1, 3)):
        messages += [{"role": "user", "content": _text(rng, 12)}, {"role": "assistant", "content": _text(rng, 40)}]
    return messages, None


def mixed_rows(seed: int, count: int) -> list[Example]:
    rng = random.Random(seed)
    rows = []
    for line in range(1, count + 1):
        if rng.random() < 0.15:
            rows.append(Example(f"k{line}", "mix.jsonl", line, text=_text(rng, 60), continues=rng.random() < 0.3))
        else:
            messages, tools = _messages(rng)
            rows.append(Example(f"k{line}", "mix.jsonl", line, messages=messages, tools=tools))
    return rows


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("pool-templates")


@pytest.mark.parametrize(("name", "refuses"), [("gemma-2-2b-it", True), ("llama-3.1-8b-instruct", False)])
def test_workers_tokenize_every_row_exactly_as_one_process(root, name, refuses):
    tokenizer = load_template_tokenizer(name, root)
    rows = mixed_rows(seed=len(name), count=3 * BLOCK_ROWS + 17)  # blocks in flight, and a short last one
    one = tokenize_rows(tokenizer, rows, max_seq_length=200, processes=1)
    two = tokenize_rows(tokenizer, rows, max_seq_length=200, processes=2)
    assert one.kept and one.too_long and bool(one.unrenderable) == refuses  # the mix reaches every outcome
    assert one.folded if name in FOLDS_SYSTEM else not one.folded
    assert [(t.input_ids, t.labels, t.folded_system, t.derived_tool_ids) for t in two.kept] == [
        (t.input_ids, t.labels, t.folded_system, t.derived_tool_ids) for t in one.kept
    ]
    assert (two.kept_count, two.too_long, two.folded) == (one.kept_count, one.too_long, one.folded)
    assert [(e.line, message) for e, message in two.unrenderable] == [(e.line, m) for e, m in one.unrenderable]


def test_validation_in_worker_processes_gives_the_same_report_and_rows(root, tmp_path):
    tokenizer = load_template_tokenizer("gemma-2-2b-it", root)
    data = tmp_path / "data"
    data.mkdir()
    records = [
        {"messages": e.messages, **({"tools": e.tools} if e.tools else {})}
        for e in mixed_rows(seed=3, count=2 * BLOCK_ROWS)
        if e.messages is not None  # one training format per folder
    ]
    (data / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n", "utf-8")
    reports = []
    for processes in (1, 2):
        report, rows = validate_dataset(
            data, tokenizer=tokenizer, max_seq_length=64, overlong_rows="quarantine", tokenize_processes=processes
        )
        reports.append(({k: v for k, v in asdict(report).items() if not k.endswith("_path")}, rows))
    (one, one_rows), (two, two_rows) = reports
    assert one["reasons"].keys() >= {"template_error", "too_many_tokens"} and one["rows_valid"] > 0
    assert two == one and two_rows == one_rows


def test_prepared_rows_are_the_same_file_with_workers(root, tmp_path):
    from trainer.data.files import stream_digest
    from trainer.train.prepared import ROWS_FILE, prepare

    tokenizer = load_template_tokenizer("llama-3.1-8b-instruct", root)
    rows = mixed_rows(seed=11, count=2 * BLOCK_ROWS + 1)
    digests = []
    for processes in (1, 2):
        prepared = prepare(rows, tokenizer, template_folder("llama-3.1-8b-instruct", root), 200, False,
                           tmp_path / str(processes), processes)  # fmt: skip
        digests.append(stream_digest(tmp_path / str(processes) / prepared.key / ROWS_FILE)[0])
        assert not prepared.reused and prepared.too_long
    assert digests[0] == digests[1]


def test_processes_decided_by_rows_and_cores(monkeypatch):
    from trainer.model import token_pool

    monkeypatch.setattr(token_pool, "available_cores", lambda: 2)
    assert processes_for(PARALLEL_MIN_ROWS - 1) == 1  # starting workers costs more than they save
    assert processes_for(PARALLEL_MIN_ROWS) == 2
    assert processes_for(10, requested=3) == 3 and processes_for(10**6, requested=1) == 1
    monkeypatch.setattr(token_pool, "available_cores", lambda: 64)
    assert processes_for(10**6) == token_pool.MAX_AUTO_PROCESSES


def test_a_worker_that_dies_is_one_clear_error(root):
    tokenizer = load_template_tokenizer("gemma-2-2b-it", root)
    rows = mixed_rows(seed=5, count=BLOCK_ROWS)
    from trainer.model.tokens import count_or_error

    with TokenPool(tokenizer, 2) as pool:
        list(pool.imap(count_or_error, rows[:4]))  # the workers are up
        os.kill(next(iter(pool._executor._processes)), signal.SIGKILL)  # as the kernel's OOM killer would
        assert issubclass(TokenizerWorkerError, TransientError)  # retried by the tasks; the CLI: one line, not "a bug"
        with pytest.raises(TokenizerWorkerError, match="a tokenizing worker process died .* set tokenize_processes: 1"):
            list(pool.imap(count_or_error, rows))


_PARENT = textwrap.dedent(
    """
    import sys

    if __name__ != "__main__":  # a spawned worker importing this script, as it would `llm-trainer`'s
        print("re-imported by a worker", file=sys.stderr, flush=True)
    else:
        from tests.templates import load_template_tokenizer
        from tests.integration.test_token_pool import mixed_rows
        from trainer.model.token_pool import BLOCK_ROWS, TokenPool
        from trainer.model.tokens import count_or_error

        tokenizer = load_template_tokenizer("gemma-2-2b-it", sys.argv[1])
        with TokenPool(tokenizer, 2) as pool:
            list(pool.imap(count_or_error, mixed_rows(1, 2 * BLOCK_ROWS)))
            print(*pool._executor._processes, flush=True)
            while True:  # tokenizing, until a signal
                list(pool.imap(count_or_error, mixed_rows(2, 600)))
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie is gone, waiting to be reaped
    except FileNotFoundError:
        return False


def _start_parent(root: Path) -> tuple[subprocess.Popen, list[int]]:
    template_folder("gemma-2-2b-it", root)  # built here, read by the child
    script = root / "parent.py"  # a script, so its __main__ has a file a worker could import
    script.write_text(_PARENT, encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, str(script), str(root)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background job's parent ignores it
    )
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    if len(workers) != 2:
        parent.kill()
        pytest.fail(f"the workers did not start: {parent.communicate()[1]}")
    time.sleep(0.5)  # well into tokenizing
    return parent, workers


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_stops_the_workers_with_one_traceback(root):
    """Ctrl-C in a terminal signals the whole foreground group: parent and workers alike."""
    parent, workers = _start_parent(root)
    os.killpg(parent.pid, signal.SIGINT)
    _, stderr = parent.communicate(timeout=30)
    assert parent.returncode != 0 and _gone_within(workers, 10)
    assert stderr.count("KeyboardInterrupt") == 1, stderr  # the parent's; no worker prints its own
    assert "re-imported by a worker" not in stderr  # the workers started without the parent's main script


def test_a_sigkilled_parent_leaves_no_worker_behind(root):
    parent, workers = _start_parent(root)
    parent.kill()
    parent.wait(timeout=10)
    assert _gone_within(workers, 10)
