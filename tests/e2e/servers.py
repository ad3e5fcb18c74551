"""Real servers for the end-to-end tests: `prefect server`, `mlflow server` and a process worker,
on free 127.0.0.1 ports, each in its own session, stopped by process group.

Usable on its own too (what docs/operations.md does by hand):

    with Stack.start(tmp_dir) as stack:
        stack.create_pool()
        stack.cli("prefect", "--no-prompt", "deploy", "--all")
        stack.start_worker()
        stack.cli("prefect", "deployment", "run", "llm-trainer/adhoc", "--watch")

Every process started here, and everything those start (uvicorn, mlflow's gunicorn/uvicorn
workers, the worker's flow-run subprocesses), carries the environment variable `E2E_MARK_VAR`
with this stack's id; `stop()` kills the process groups (SIGTERM, then SIGKILL) and then any
process still carrying the mark, and raises if one survives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
E2E_MARK_VAR = "LLM_TRAINER_E2E_STACK"
WORK_POOL = "llm-trainer"  # the pool prefect.yaml's deployments target (its `running_on`)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def marked_processes(mark: str, variable: str = E2E_MARK_VAR) -> list[int]:
    """PIDs (other than ours) whose environment carries `variable=mark`; zombies don't count."""
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "status"]):
        if p.info["pid"] == os.getpid() or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if p.environ().get(variable) == mark:
                found.append(p.info["pid"])
        except (psutil.Error, OSError):
            continue
    return found


def stop_service(service: Service, grace: float = 15.0) -> None:
    """SIGTERM the service's process group, SIGKILL it after `grace` seconds, reap the leader."""
    pgid = service.proc.pid  # start_new_session: the leader's pid is the group id
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            service.proc.poll()  # reap the leader so a zombie does not keep the group alive
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
        if not _group_alive(pgid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        service.proc.wait(timeout=5)


def start_mlflow_server(root: Path, port: int | None = None, timeout: float = 180.0) -> tuple[Service, int]:
    """A lone `mlflow server` (sqlite store and artifacts under `root`, kept across restarts on the
    same `root`) on 127.0.0.1, in its own session; returns once /health answers."""
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = root / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    with log.open("ab") as handle:
        proc = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    service = Service("mlflow-server", proc, log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return service, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_service(service)
                raise RuntimeError(f"mlflow server did not start: {service.tail()}") from None
            time.sleep(0.5)


@dataclass
class Stack:
    """A Prefect server, an MLflow server (sqlite + local artifacts) and, once started, a worker."""

    root: Path
    prefect_url: str
    mlflow_url: str
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)
    mark: str = ""
    leftovers_killed: list[int] = field(default_factory=list)  # marked processes stop() had to kill

    @classmethod
    def start(cls, root: Path, timeout: float = 120.0) -> Stack:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        prefect_port, mlflow_port = free_port(), free_port()
        mark = uuid.uuid4().hex
        env = {
            **os.environ,
            E2E_MARK_VAR: mark,
            "PREFECT_HOME": str(root / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            # Workers ask for work every second instead of every 10 s, and a run that waits for its
            # deployment's concurrency slot asks again after 2 s instead of 30 s: the tests wait less.
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
            "DO_NOT_TRACK": "true",
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # No huey job runners beside the server: nothing here uses MLflow server jobs.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "LLM_TRAINER_HOME": str(root / "state"),
            # prefect.yaml's pull step is `set_working_directory: {{ $PWD }}`, resolved at deploy time.
            "PWD": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "GX_ANALYTICS_ENABLED": "False",
            "TOKENIZERS_PARALLELISM": "false",
        }
        for key in ("MLFLOW_REGISTRY_URI", "PREFECT_PROFILES_PATH"):
            env.pop(key, None)
        Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
        stack = cls(
            root=root, prefect_url=env["PREFECT_API_URL"], mlflow_url=env["MLFLOW_TRACKING_URI"], env=env, mark=mark
        )
        try:
            stack._spawn(
                "prefect-server",
                [
                    str(BIN / "prefect"),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(prefect_port),
                    "--no-ui",
                    "--analytics-off",
                ],
            )
            (root / "mlartifacts").mkdir(exist_ok=True)
            stack._spawn(
                "mlflow-server",
                [
                    str(BIN / "mlflow"),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    f"sqlite:///{root / 'mlflow.db'}",
                    "--artifacts-destination",
                    str(root / "mlartifacts"),
                ],
            )
            stack.wait_healthy(stack.services[0], f"{stack.prefect_url}/health", timeout)
            stack.wait_healthy(stack.services[1], f"{stack.mlflow_url}/health", timeout)
        except BaseException:
            stack.stop()
            raise
        return stack

    def _spawn(self, name: str, cmd: list[str], cwd: Path = REPO) -> Service:
        log = self.root / f"{name}.log"
        handle = log.open("ab")
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        handle.close()
        service = Service(name, proc, log)
        self.services.append(service)
        return service

    @staticmethod
    def wait_healthy(service: Service, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.proc.poll() is not None:
                raise RuntimeError(f"{service.name} exited with {service.proc.returncode}:\n{service.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{service.name} not healthy at {url} after {timeout:.0f}s:\n{service.tail()}")

    def cli(
        self, *args: str, timeout: float = 240, check: bool = True, env: dict[str, str] | None = None, cwd: Path = REPO
    ) -> subprocess.CompletedProcess:
        """Run a console script of this venv (`prefect`, `llm-trainer`, ...) against the stack."""
        cmd = [str(BIN / args[0]), *args[1:]]
        result = subprocess.run(
            cmd,
            cwd=cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
                f"\n--- stderr\n{result.stderr[-4000:]}"
            )
        return result

    def popen(self, *args: str, name: str) -> Service:
        """Start a console script in the background (its own session), output to ROOT/NAME.log."""
        return self._spawn(name, [str(BIN / args[0]), *args[1:]])

    def create_pool(self, pool: str = WORK_POOL) -> None:
        self.cli("prefect", "work-pool", "create", pool, "--type", "process", timeout=60)

    def start_worker(self, pool: str = WORK_POOL) -> Service:
        return self.popen("prefect", "worker", "start", "--pool", pool, "--type", "process", name=f"worker-{pool}")

    def stop(self) -> None:
        """Stop every service (newest first), then anything else still carrying this stack's mark."""
        for service in reversed(self.services):
            stop_service(service)
        self.leftovers_killed = marked_processes(self.mark)
        for pid in self.leftovers_killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5 if self.leftovers_killed else 0)
        survivors = marked_processes(self.mark)
        alive = [s.name for s in self.services if _group_alive(s.proc.pid)]
        if survivors or alive:
            raise RuntimeError(f"processes left behind: groups {alive}, pids {survivors}")

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
