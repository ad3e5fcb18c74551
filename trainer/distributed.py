"""Data-parallel training on several processes and machines: torchrun runs the Trainer's own DDP.

Why torchrun rather than spawning processes by hand: it gives each process RANK / LOCAL_RANK /
WORLD_SIZE and the rendezvous address, joins the nodes, and tears the whole group down when one
process dies, so a crash anywhere is one non-zero exit that the Prefect task can retry (the retry
resumes from the run's latest checkpoint like a single-process one). The Trainer reads those
variables and wraps the model in DistributedDataParallel; what this module adds is what a
pipeline needs around it:

- a launch spec (settings, paths, the rows as JSONL) that every process reads, instead of argv;
- rank 0 alone logs to the flow's MLflow run, saves the adapter and writes `result.json`, which
  the launching task reads back as its `TrainResult`; a failing rank writes `error.json`, so a bad
  setting is re-raised as one (not retried) and a crash as a retryable error;
- for several nodes, the one command each other node runs (`llm-trainer join SPEC --node-rank K`).

Several nodes need the run outputs on a filesystem all of them see (the spec and rows are read by
every node; checkpoints hold one RNG state per rank) and `rdzv_endpoint` (node 0's host:port)
reachable from each. Ranks are static: node 0 is the node the flow runs on and holds rank 0.

Models that do not fit on one GPU even in 4-bit need sharding (FSDP or DeepSpeed ZeRO-3), not
DDP; see docs/operations.md.

This module imports nothing heavy at the top: `process_rank()` / `world_size()` are used by
`trainer.training` in every process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.data import Example
    from trainer.settings import Settings
    from trainer.training import TrainResult

log = logging.getLogger("llm_trainer.distributed")

SPEC = "spec.json"
RESULT = "result.json"
ERROR = "error.json"


def process_rank() -> int:
    """This process's global rank under torchrun; 0 when training in one process."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def planned_processes(settings: Settings) -> int:
    return settings.num_processes * settings.num_nodes


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # several ranks may race to write error.json
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _write_rows(path: Path, examples: list[Example]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for example in examples:
            fh.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _read_rows(path: Path) -> list[Example]:
    from trainer.data import Example

    with path.open(encoding="utf-8") as fh:
        return [Example(**json.loads(line)) for line in fh if line.strip()]


def write_spec(
    settings: Settings,
    *,
    base_model_dir: Path,
    train_examples: list[Example],
    output_dir: Path,
    resume_from: Path | None,
    warm_start_adapter: Path | None,
    eval_examples: list[Example] | None,
    checkpoint_meta: dict | None,
    metrics_run_id: str | None,
) -> Path:
    """Everything the worker processes need, under <output_dir>/distributed/. No secrets: the
    tracking URI (which may hold credentials) reaches the workers through their environment."""
    folder = output_dir / "distributed"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (RESULT, ERROR):
        (folder / stale).unlink(missing_ok=True)
    _write_rows(folder / "train.jsonl", train_examples)
    _write_rows(folder / "eval.jsonl", eval_examples or [])
    spec = {
        "settings_yaml": settings.to_yaml(),
        "base_model_dir": str(base_model_dir),
        "output_dir": str(output_dir),
        "resume_from": str(resume_from) if resume_from else None,
        "warm_start_adapter": str(warm_start_adapter) if warm_start_adapter else None,
        "train_rows": "train.jsonl",
        "eval_rows": "eval.jsonl" if eval_examples else None,
        "checkpoint_meta": checkpoint_meta or {},
        "metrics_run_id": metrics_run_id,
    }
    _write_json_atomic(folder / SPEC, spec)
    return folder / SPEC


def spec_settings(spec_path: Path) -> Settings:
    """The settings a launch spec carries (validated again, as every process and node reads them)."""
    import yaml

    from trainer.settings import build_settings

    return build_settings(yaml.safe_load(json.loads(spec_path.read_text(encoding="utf-8"))["settings_yaml"]))


def torchrun_command(settings: Settings, spec_path: Path, node_rank: int = 0) -> list[str]:
    """`torchrun` for one node. One node: a standalone rendezvous on a free local port. Several:
    static ranks, node 0 (the flow's node) at rdzv_endpoint."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={settings.num_processes}"]
    if settings.num_nodes == 1 and not settings.rdzv_endpoint:
        command.append("--standalone")
    else:
        host, port = (settings.rdzv_endpoint or "127.0.0.1:29500").rsplit(":", 1)
        command += [f"--nnodes={settings.num_nodes}", f"--node-rank={node_rank}", f"--master-addr={host}", f"--master-port={port}"]
    return [*command, "-m", "trainer.distributed", str(spec_path)]


def join_command(spec_path: Path, node_rank: int) -> str:
    return f"llm-trainer join {spec_path} --node-rank {node_rank}"


class DistributedTrainingError(RuntimeError):
    """A worker process crashed (retryable: the retry resumes from the latest checkpoint)."""


def run_torchrun(settings: Settings, spec_path: Path, node_rank: int = 0, log_line: Callable[[str], None] | None = None) -> None:
    """Run torchrun for this node, streaming its output to `log_line` and to launch-<node>.log."""
    from trainer import state

    command = torchrun_command(settings, spec_path, node_rank)
    env = {**os.environ, "MLFLOW_TRACKING_URI": state.tracking_uri(), "PYTHONUNBUFFERED": "1"}
    env.setdefault("PYTHONPATH", str(state.PROJECT_ROOT))
    log_path = spec_path.parent / f"launch-node{node_rank}.log"
    tail: deque[str] = deque(maxlen=20)
    emit = log_line or (lambda line: log.info("%s", line))
    emit(f"Launching {planned_processes(settings)} training processes "
         f"({settings.num_nodes} node(s) x {settings.num_processes}): {' '.join(command[1:])}")
    with log_path.open("w", encoding="utf-8") as log_file, subprocess.Popen(
        command, cwd=state.PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            line = line.rstrip()
            if line:
                tail.append(line)
                emit(line)
        code = process.wait()
    if code != 0:
        _raise_worker_error(spec_path.parent, code, log_path, tail)


def _raise_worker_error(folder: Path, code: int, log_path: Path, tail: deque[str]) -> None:
    error_file = folder / ERROR
    if error_file.is_file():
        error = json.loads(error_file.read_text(encoding="utf-8"))
        message = f"{error['message']} (training process rank {error['rank']}; log: {log_path})"
        if error["kind"] == "settings":
            from trainer.settings import SettingsError

            raise SettingsError(error["message"])
        if error["kind"] == "value":
            raise ValueError(message)
        if error["kind"] == "memory":
            raise MemoryError(message)
        raise DistributedTrainingError(f"{error['type']}: {message}")
    last = tail[-1] if tail else "no output"
    raise DistributedTrainingError(f"torchrun exited with code {code}: {last} (log: {log_path})")


def launch(
    settings: Settings,
    *,
    base_model_dir: Path,
    train_examples: list[Example],
    output_dir: Path,
    resume_from: Path | None = None,
    warm_start_adapter: Path | None = None,
    eval_examples: list[Example] | None = None,
    checkpoint_meta: dict | None = None,
    metrics_run_id: str | None = None,
    log_line: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train with num_processes x num_nodes processes; returns rank 0's TrainResult."""
    from trainer.training import TrainResult

    started = time.perf_counter()
    spec_path = write_spec(
        settings, base_model_dir=base_model_dir, train_examples=train_examples, output_dir=output_dir,
        resume_from=resume_from, warm_start_adapter=warm_start_adapter, eval_examples=eval_examples,
        checkpoint_meta=checkpoint_meta, metrics_run_id=metrics_run_id,
    )
    emit = log_line or (lambda line: log.info("%s", line))
    for node in range(1, settings.num_nodes):
        emit(f"Waiting for node {node}: on it, run `{join_command(spec_path, node)}`")
    run_torchrun(settings, spec_path, 0, log_line)
    result_file = spec_path.parent / RESULT
    if not result_file.is_file():
        raise DistributedTrainingError(f"training processes exited without {result_file}")
    result = TrainResult(**json.loads(result_file.read_text(encoding="utf-8")))
    result.seconds = time.perf_counter() - started  # the whole launch: process start-up included
    return result


def _error_kind(exc: BaseException) -> str:
    from trainer.settings import SettingsError

    if isinstance(exc, SettingsError):
        return "settings"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "memory"
    if isinstance(exc, ValueError):
        return "value"
    return "crash"


def worker_main(spec_path: Path) -> None:
    """One training process under torchrun (`python -m trainer.distributed SPEC`)."""
    rank = process_rank()
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    folder = spec_path.parent
    try:
        from trainer import tracking
        from trainer.training import train

        settings = spec_settings(spec_path)
        sink = None
        if rank == 0 and spec["metrics_run_id"] and settings.enable_metrics:
            sink = tracking.metrics_sink(spec["metrics_run_id"])
        try:
            result = train(
                settings,
                base_model_dir=Path(spec["base_model_dir"]),
                train_examples=_read_rows(folder / spec["train_rows"]),
                output_dir=Path(spec["output_dir"]),
                resume_from=Path(spec["resume_from"]) if spec["resume_from"] else None,
                warm_start_adapter=Path(spec["warm_start_adapter"]) if spec["warm_start_adapter"] else None,
                metrics_sink=sink,
                show_progress=rank == 0,
                eval_examples=_read_rows(folder / spec["eval_rows"]) if spec["eval_rows"] else None,
                checkpoint_meta=spec["checkpoint_meta"],
            )
        finally:
            if sink is not None:
                tracking.flush()
        if rank == 0:
            _write_json_atomic(folder / RESULT, asdict(result))
    except BaseException as exc:
        if not (folder / ERROR).exists():  # the first failing rank names the cause
            _write_json_atomic(folder / ERROR, {"rank": rank, "kind": _error_kind(exc), "type": type(exc).__name__,
                                                "message": str(exc)})
        raise


if __name__ == "__main__":
    worker_main(Path(sys.argv[1]))
