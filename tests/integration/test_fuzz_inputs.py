"""Every kind of file a command reads, mutated at random: the answer is an exit code in {0, 1, 2}, never
a traceback, within bounded time and memory, and nothing is written outside the command's target.

Generative (hypothesis), from real seeds: a settings file (`estimate --config`), data files of each
format `validate` reads (JSON lines, a JSON array, CSV, gzip), a backup's MANIFEST.json (`verify`), a
backup's base_reference.json re-sealed into its manifest as an attacker would (`restore`), and a real
checkpoint's completion marker, trainer state and adapter header (`resolve_artifact`, what
`trained_artifact` goes through before anything loads). Mutations: byte flips, cuts, repeats, and
inserted hostile fragments (YAML alias bombs and tags, deep nesting, huge numbers, NUL, lone
surrogates, invalid UTF-8, paths out of the folder); for JSON, values replaced by arbitrary JSON.

Derandomized, so CI runs the same examples every time; HYPOTHESIS_PROFILE=explore runs ten times as
many, freshly drawn. About a minute in `make test` (the `fuzz` profile).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.cli import Result, invoke
from tests.conftest import DEMO_DATA
from trainer.errors import PipelineError

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
settings.register_profile(
    "fuzz", deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
settings.register_profile("explore", parent=settings.get_profile("fuzz"), derandomize=False)
PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "fuzz")
PROFILE = settings.get_profile(PROFILE_NAME)
SCALE = 10 if PROFILE_NAME == "explore" else 1
SECONDS_PER_EXAMPLE = 30  # the slowest honest answer here is well under a second
MAX_RSS_GROWTH = 1.5 * 2**30

HOSTILE = [
    b"\x00", b"\xff\xfe\xfd", b"\xed\xa0\x80", b"\\ud800", b"\r", b"\n\n", b'"', b"'", b",", b"\t",
    b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
    b"!!python/object/apply:os.system ['touch /tmp/pwned']", b"!!binary AAAA", b"<<: *a",
    b"[" * 3000, b"{" * 3000, b'{"a":' * 3000, b"- " * 3000, b"9" * 5000, b"-1e999", b"NaN", b"Infinity",
    b"../../../../etc/passwd", b"/etc/passwd", b"~", b"%s%n", b"\x1b[2J", b"true", b"null", b"[]", b"{}",
    b'"files": {"../outside": {"sha256": "0", "bytes": 1}}', b'"bytes": -1', b'"bytes": 1e400',
]  # fmt: skip

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _apply(seed: bytes, ops: list[tuple]) -> bytes:
    data = bytearray(seed)
    for op, at, arg in ops:
        at = min(at, len(data))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= arg
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = arg
        elif op == "delete":
            del data[at : at + arg]
        elif op == "repeat":
            data[at:at] = bytes(data[at : at + 64]) * arg
    return bytes(data)


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """`seed` changed by one to four random edits (hostile fragments among the inserted bytes)."""
    at = st.integers(0, max(len(seed), 1))
    op = st.one_of(
        st.tuples(st.just("flip"), at, st.integers(1, 255)),
        st.tuples(st.just("cut"), at, st.just(0)),
        st.tuples(st.just("insert"), at, st.sampled_from(HOSTILE) | st.binary(max_size=32)),
        st.tuples(st.just("delete"), at, st.integers(1, 64)),
        st.tuples(st.just("repeat"), at, st.integers(2, 40)),
    )
    return st.lists(op, min_size=1, max_size=4).map(lambda ops: _apply(seed, ops))


def json_mutated(seed: object) -> st.SearchStrategy[bytes]:
    """The JSON document `seed` with one value (at any depth) replaced by arbitrary JSON, or its bytes mutated."""

    def paths(value: object, prefix: tuple = ()) -> list[tuple]:
        found = [prefix]
        if isinstance(value, dict):
            for key, inner in value.items():
                found += paths(inner, (*prefix, key))
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                found += paths(inner, (*prefix, index))
        return found

    def replace(path: tuple, new: object) -> bytes:
        document = json.loads(json.dumps(seed))
        if not path:
            return json.dumps(new).encode()
        holder = document
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = new
        return json.dumps(document).encode()

    structural = st.builds(replace, st.sampled_from(paths(seed)), JSON)
    return structural | mutated(json.dumps(seed, indent=1).encode())


class Sandbox:
    """A fresh folder per example: the command's target inside it, the current folder and an outside
    folder beside it, which must be exactly as they were afterwards."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fuzz-"))
        self.target, self.cwd, self.outside = self.root / "target", self.root / "cwd", self.root / "outside"
        for folder in (self.target, self.cwd, self.outside):
            folder.mkdir()
        (self.outside / "secret.txt").write_text("outside the target")

    def check_untouched(self) -> None:
        assert sorted(p.name for p in self.cwd.iterdir()) == [], "a command wrote into the current folder"
        assert [p.name for p in self.outside.iterdir()] == ["secret.txt"], "a command wrote outside its target"
        assert (self.outside / "secret.txt").read_text() == "outside the target"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def sandbox():
    box, before = Sandbox(), os.getcwd()
    os.chdir(box.cwd)
    try:
        yield box
        box.check_untouched()
    finally:
        os.chdir(before)
        box.remove()


def _answered(result: Result, started: float, what: str) -> None:
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1, 2), f"{what}: exit {result.returncode}\n{output[-3000:]}"
    assert "Traceback" not in output, f"{what}:\n{output[-3000:]}"
    assert "error: unexpected " not in result.stderr, f"{what}: {result.stderr[-2000:]}"
    assert took < SECONDS_PER_EXAMPLE, f"{what}: took {took:.1f} s"


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < MAX_RSS_GROWTH, f"peak memory grew by {grown / 2**30:.2f} GiB while fuzzing"


def _fuzz(strategy: st.SearchStrategy, check: Callable, examples: int) -> None:
    """Run `check(example)` for `examples` examples of `strategy` (ten times as many when exploring);
    a plain function, so pytest's fixtures are not set up again per example."""
    from hypothesis import given

    settings(PROFILE, max_examples=examples * SCALE)(given(strategy)(check))()


# Seeds: real files of each kind.
CONFIG = (REPO / "examples" / "configs" / "customer-service-bot.yaml").read_bytes()
JSONL = b"".join((DEMO_DATA / "conversations.jsonl").read_bytes().splitlines(keepends=True)[:3])
ROWS = [json.loads(line) for line in JSONL.splitlines()]
CSV = b'instruction,input,output\n"Say hi","","Hi there!"\n"Add 2 and 2","","4"\n'


def test_settings_files(tmp_path):
    def check(content: bytes) -> None:
        with sandbox() as box:
            config = box.target / "settings.yaml"
            config.write_bytes(content)
            started = time.monotonic()
            _answered(invoke("estimate", "--config", config), started, f"estimate --config {content[:200]!r}")

    _fuzz(mutated(CONFIG), check, 100)


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.json", "rows.csv", "rows.jsonl.gz"])
def test_data_files(name):
    seeds = {
        "rows.jsonl": mutated(JSONL) | st.lists(json_mutated(ROWS[0]), min_size=1, max_size=3).map(b"\n".join),
        "rows.json": json_mutated(ROWS),
        "rows.csv": mutated(CSV),
        "rows.jsonl.gz": mutated(gzip.compress(JSONL, mtime=0)) | mutated(JSONL).map(lambda b: gzip.compress(b)),
    }

    def check(content: bytes) -> None:
        with sandbox() as box:
            (box.target / "data").mkdir()
            (box.target / "data" / name).write_bytes(content)
            started = time.monotonic()
            result = invoke("validate", box.target / "data", "--report", box.target / "report.json")
            _answered(result, started, f"validate {name} {content[:200]!r}")

    _fuzz(seeds[name], check, 30)


@pytest.fixture(scope="module")
def backup_seed(tmp_path_factory) -> Path:
    """A real backup (trainer.storage.backup) of an adapter folder and a base reference."""
    from trainer.storage.backup import backup

    source = tmp_path_factory.mktemp("backup-source")
    (source / "adapter").mkdir()
    (source / "adapter" / "adapter_model.safetensors").write_bytes(os.urandom(512))
    (source / "adapter" / "adapter_config.json").write_text("{}")
    (source / "model").mkdir()
    (source / "model" / "base_reference.json").write_text(
        json.dumps({"hub_id": "org/base", "path": "/somewhere/else", "quantization_bits": 4, "max_new_tokens": 16})
    )
    destination = tmp_path_factory.mktemp("backups")
    backup({"adapter": source / "adapter", "model": source / "model"}, str(destination), "run-1", {"model": "m"})
    return destination / "run-1"


def test_backup_manifests(backup_seed):
    seed = json.loads((backup_seed / "MANIFEST.json").read_text())

    def check(content: bytes) -> None:
        with sandbox() as box:
            copy = box.target / "backup"
            shutil.copytree(backup_seed, copy)
            (copy / "MANIFEST.json").write_bytes(content)
            started = time.monotonic()
            _answered(invoke("verify", copy), started, f"verify, MANIFEST.json {content[:200]!r}")

    _fuzz(json_mutated(seed), check, 150)


def test_backup_base_references_resealed_by_an_attacker(backup_seed):
    from trainer.storage.backup import sha256_file

    seed = json.loads((backup_seed / "model" / "base_reference.json").read_text())

    def check(content: bytes) -> None:
        with sandbox() as box:
            copy = box.target / "backup"
            shutil.copytree(backup_seed, copy)
            reference = copy / "model" / "base_reference.json"
            reference.write_bytes(content)
            manifest = json.loads((copy / "MANIFEST.json").read_text())
            manifest["files"]["model/base_reference.json"] = {
                "sha256": sha256_file(reference), "bytes": reference.stat().st_size,
            }  # fmt: skip
            (copy / "MANIFEST.json").write_text(json.dumps(manifest))
            started = time.monotonic()
            result = invoke("restore", copy, "--to", box.target / "restored")
            _answered(result, started, f"restore, base_reference.json {content[:200]!r}")

    _fuzz(json_mutated(seed), check, 60)


@pytest.fixture(scope="module")
def checkpoint_seed(tiny_model_dir, tmp_path_factory) -> Path:
    """A real checkpoint: the tiny model trained one step."""
    from trainer.config.loading import load_settings
    from trainer.data.contracts.validate import validate_dataset
    from trainer.train.job import TrainJob
    from trainer.train.loop import train

    out = tmp_path_factory.mktemp("checkpoint-run")
    job_settings = load_settings("demo", None, ["max_steps=1", "save_every_n_iterations=1", f"output_dir={out}"])
    _, rows = validate_dataset(DEMO_DATA)
    train(TrainJob(job_settings, tiny_model_dir, rows[:8], out), show_progress=False)
    [checkpoint] = out.glob("checkpoints/checkpoint-1")
    return checkpoint


@pytest.mark.parametrize("name", ["llm_trainer_checkpoint.json", "trainer_state.json", "adapter_model.safetensors"])
def test_checkpoint_files(checkpoint_seed, name):
    from trainer.registry.lineage import resolve_artifact

    original = (checkpoint_seed / name).read_bytes()
    if name.endswith(".json"):
        strategy = json_mutated(json.loads(original))
    else:  # the header: its 8-byte length and its JSON
        length = int.from_bytes(original[:8], "little")
        header = json.loads(original[8 : 8 + length])
        strategy = mutated(original[: 8 + length + 64]).map(lambda head: head + original[8 + length + 64 :]) | (
            json_mutated(header).map(lambda h: len(h).to_bytes(8, "little") + h + original[8 + length :])
        )

    def check(content: bytes) -> None:
        with sandbox() as box:
            copy = box.target / "checkpoint-1"
            shutil.copytree(checkpoint_seed, copy)
            (copy / name).write_bytes(content)
            started = time.monotonic()
            try:
                resolve_artifact(str(copy))
            except PipelineError as exc:
                assert "\n" not in str(exc), str(exc)
            assert time.monotonic() - started < SECONDS_PER_EXAMPLE

    _fuzz(strategy, check, 100)
