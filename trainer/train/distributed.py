"""Data-parallel training on several processes and machines: torchrun runs the Trainer's own DDP.

Why torchrun rather than spawning processes by hand: it gives each process RANK / LOCAL_RANK /
WORLD_SIZE and the rendezvous address, joins the nodes, and tears the whole group down when one
process dies, so a crash anywhere is one non-zero exit that the Prefect task can retry (the retry
resumes from the run's latest checkpoint like a single-process one). The Trainer reads those
variables and wraps the model in DistributedDataParallel; what this module adds is what a
pipeline needs around it:

- a launch spec (the `TrainJob`, serialised: settings, paths, the rows as JSONL) that every process
  reads, instead of argv;
- rank 0 alone logs to the flow's MLflow run, saves the adapter and writes `result.json`, which
  the launching task reads back as its `TrainResult`; a failing rank writes `error.json`, so a bad
  setting is re-raised as one (not retried) and a crash as a retryable error;
- for several nodes, the one command each other node runs (`llm-trainer join SPEC --node-rank K`).

Several nodes need the run outputs on a filesystem all of them see (the spec and rows are read by
every node; checkpoints hold one RNG state per rank) and `rdzv_endpoint` (node 0's host:port)
reachable from each. Ranks are static: node 0 is the node the flow runs on and holds rank 0.

Models that do not fit on one GPU even in 4-bit need sharding (FSDP or DeepSpeed ZeRO-3), not
DDP; see docs/operations.md.

This module imports nothing heavy at the top; torch and transformers load inside the workers.
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

from trainer import errors, registry
from trainer.config import state
from trainer.config.settings import Settings
from trainer.errors import DistributedTrainingError, PipelineError, SettingsError
from trainer.model.runtime import process_rank
from trainer.processes import stop_group
from trainer.redact import install_log_redaction, redact
from trainer.train.job import ERROR, RESULT, TrainJob, TrainResult, write_json_atomic
from trainer.train.loop import train

log = logging.getLogger("llm_trainer.distributed")


def planned_processes(settings: Settings) -> int:
    return settings.num_processes * settings.num_nodes


def torchrun_command(settings: Settings, spec_path: Path, node_rank: int = 0) -> list[str]:
    """`torchrun` for one node. One node: a standalone rendezvous on a free local port. Several:
    static ranks, node 0 (the flow's node) at rdzv_endpoint."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={settings.num_processes}"]
    if settings.num_nodes == 1 and not settings.rdzv_endpoint:
        command.append("--standalone")
    else:
        host, port = (settings.rdzv_endpoint or "127.0.0.1:29500").rsplit(":", 1)
        command += [
            f"--nnodes={settings.num_nodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={host}",
            f"--master-port={port}",
        ]
    return [*command, "-m", "trainer.train.distributed", str(spec_path)]


def join_command(spec_path: Path, node_rank: int) -> str:
    return f"llm-trainer join {spec_path} --node-rank {node_rank}"


def run_torchrun(
    settings: Settings, spec_path: Path, node_rank: int = 0, log_line: Callable[[str], None] | None = None
) -> None:
    """Run torchrun for this node, streaming its output to `log_line` and to launch-<node>.log."""
    command = torchrun_command(settings, spec_path, node_rank)
    env = {**os.environ, "MLFLOW_TRACKING_URI": state.tracking_uri(), "PYTHONUNBUFFERED": "1"}
    env.setdefault("PYTHONPATH", str(state.PROJECT_ROOT))
    log_path = spec_path.parent / f"launch-node{node_rank}.log"
    tail: deque[str] = deque(maxlen=20)
    emit = log_line or (lambda line: log.info("%s", line))
    emit(
        f"Launching {planned_processes(settings)} training processes "
        f"({settings.num_nodes} node(s) x {settings.num_processes}): {' '.join(command[1:])}"
    )
    # Its own process group: when this process is interrupted (Ctrl-C, or SIGTERM turned into
    # KeyboardInterrupt by the CLI) or fails while reading, torchrun and every worker are stopped
    # with it instead of training on, orphaned, into the output folder a retry then uses.
    with (
        log_path.open("w", encoding="utf-8") as log_file,
        subprocess.Popen(
            command,
            cwd=state.PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        ) as process,
    ):
        try:
            assert process.stdout is not None
            for line in process.stdout:
                line = redact(line)  # a worker's traceback may quote the tracking URI
                log_file.write(line)
                line = line.rstrip()
                if line:
                    tail.append(line)
                    emit(line)
            code = process.wait()
        finally:
            stop_group(process, grace_seconds=15)
    if code != 0:
        _raise_worker_error(spec_path.parent, code, log_path, tail)


def _raise_worker_error(folder: Path, code: int, log_path: Path, tail: deque[str]) -> None:
    """Re-raise the first failing rank's error as what it was: a deterministic error as itself (not
    retried), a crash as a retryable DistributedTrainingError."""
    error_file = folder / ERROR
    if not error_file.is_file():
        last = tail[-1] if tail else "no output"
        raise DistributedTrainingError(f"torchrun exited with code {code}: {last} (log: {log_path})")
    error = json.loads(error_file.read_text(encoding="utf-8"))
    message = f"{error['message']} (training process rank {error['rank']}; log: {log_path})"
    if error["kind"] == "pipeline":
        kind = getattr(errors, error["type"], SettingsError)
        raise kind(error["message"] if kind is SettingsError else message)
    if error["kind"] == "value":
        raise ValueError(message)
    if error["kind"] == "memory":
        raise MemoryError(message)
    raise DistributedTrainingError(f"{error['type']}: {message}")


def launch(job: TrainJob, log_line: Callable[[str], None] | None = None) -> TrainResult:
    """Train `job` with num_processes x num_nodes processes; returns rank 0's TrainResult."""
    settings = job.settings
    started = time.perf_counter()
    spec_path = job.write_spec()
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
    if isinstance(exc, PipelineError) and type(exc).__name__ in vars(errors):
        return "pipeline"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "memory"
    if isinstance(exc, ValueError):
        return "value"
    return "crash"


def worker_main(spec_path: Path) -> None:
    """One training process under torchrun (`python -m trainer.train.distributed SPEC`)."""
    rank = process_rank()
    install_log_redaction()
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("llm_trainer.prepared").setLevel(logging.INFO)  # every rank says whether it prepared
    folder = spec_path.parent
    try:
        job = TrainJob.read_spec(spec_path)
        sink = None
        if rank == 0 and job.metrics_run_id and job.settings.enable_metrics:
            sink = registry.metrics_sink(job.metrics_run_id)
        try:
            result = train(job, metrics_sink=sink, show_progress=rank == 0)
        finally:
            if sink is not None:
                registry.flush()
        if rank == 0:
            write_json_atomic(folder / RESULT, asdict(result))
    except BaseException as exc:
        if not (folder / ERROR).exists():  # the first failing rank names the cause
            kind = _error_kind(exc)
            write_json_atomic(
                folder / ERROR, {"rank": rank, "kind": kind, "type": type(exc).__name__, "message": str(exc)}
            )
        raise


if __name__ == "__main__":
    worker_main(Path(sys.argv[1]))
