"""`ray job submit` against a real local Ray head with token authentication on, as on a cluster (clusters/README.md).

Ray 2.60 enables token auth on `ray start --head` when RAY_AUTH_MODE is unset and a token is found
(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token). The head here sets RAY_AUTH_MODE=token with a token file of
its own, so the test neither depends on nor touches ~/.ray. The client (`ray job submit`) only sends the token when it
also runs with RAY_AUTH_MODE=token and can find the token; `submit_job` does exactly that, and first checks that the
dashboard really refuses a request without it.

`ray stop` is not used: it kills every Ray process on the machine (it matches process names, not a cluster), which
would take down other Ray instances of the test session or of other users. The head runs as `ray start --block` in a
session of its own; stopping it SIGTERMs that process (which stops what it started), then SIGKILLs whatever is left
of its process group and any process carrying its token path in its environment (workers, job drivers).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
START_TIMEOUT_S = 90
JOB_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Head:
    dashboard: str  # http://127.0.0.1:PORT, the job server
    env: dict  # environment carrying the token, for clients (and the head itself)
    token: str
    root: Path  # short temp root: token file and Ray's --temp-dir


def _status(url: str, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _wait_for_dashboard(head: Head, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    auth = {"Authorization": f"Bearer {head.token}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(OSError):
            if _status(f"{head.dashboard}/api/jobs/", auth) == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Ray dashboard not up after {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen, root: Path) -> None:
    """SIGTERM `ray start --block` (it kills the processes it started), then SIGKILL whatever of them is left.

    Only processes of this head are signalled: its process group, and processes whose environment carries this
    head's token path (every process it started inherits it: raylet, workers, job entrypoints) or whose command line
    names its temp dir.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    # gcs_server/raylet and workers may outlive the parent briefly; the group is ours alone (start_new_session).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    import psutil  # a Ray dependency

    token_path = str(root / "token")
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if (any(str(root) in arg for arg in proc.info["cmdline"] or ())
                    or proc.environ().get("RAY_AUTH_TOKEN_PATH") == token_path):
                proc.kill()


@contextlib.contextmanager
def local_ray_head(num_cpus: int = 2):
    """A Ray head bound to 127.0.0.1 with token auth on, in its own temp dir and process group; stopped on exit."""
    # Short root: Ray puts unix sockets under --temp-dir, and their paths must stay under ~107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))
    token = secrets.token_hex(32)
    token_file = root / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"))}
    env.pop("RAY_AUTH_TOKEN", None)
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file), RAY_USAGE_STATS_ENABLED="0",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # no drain wait on SIGTERM: nothing serves traffic
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")  # jobs run with the head's PATH: find `raylayers`
    dashboard_port = _free_port()
    command = [RAY, "start", "--head", "--block", "--disable-usage-stats", "--num-cpus", str(num_cpus),
               "--port", str(_free_port()), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
               # fixed defaults (10001, 52365) would clash with another head on this machine
               "--ray-client-server-port", str(_free_port()),
               "--dashboard-agent-listen-port", str(_free_port()),
               "--temp-dir", str(root / "t")]
    log = root / "head.log"
    head = Head(dashboard=f"http://127.0.0.1:{dashboard_port}", env=env, token=token, root=root)
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_dashboard(head, process, log)
        yield head
    finally:
        _stop(process, root)
        shutil.rmtree(root, ignore_errors=True)


def submit_job(entrypoint: list[str], tmp_path: Path, timeout: float = JOB_TIMEOUT_S,
               env_vars: dict | None = None) -> subprocess.CompletedProcess:
    """Start a local token-auth head, `ray job submit` the entrypoint (blocking until it ends), stop the head.

    Returns the finished `ray job submit` process (text stdout, stderr merged in); its stdout is also saved to
    tmp_path/job.log. A job that fails gives returncode 1; a successful one prints "Job '<id>' succeeded".
    """
    job_id = f"rl-{secrets.token_hex(4)}"
    runtime_env = {"env_vars": {"RAYLAYERS_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                **(env_vars or {})}}
    with local_ray_head() as head:
        # Auth is really on: the job server refuses a request without the token, and a wrong one.
        assert _status(f"{head.dashboard}/api/jobs/") == 401
        assert _status(f"{head.dashboard}/api/jobs/", {"Authorization": "Bearer wrong"}) == 403
        command = [RAY, "job", "submit", "--address", head.dashboard, "--submission-id", job_id,
                   "--runtime-env-json", json.dumps(runtime_env), "--", *entrypoint]
        try:
            result = subprocess.run(command, check=False, env=head.env, cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"job {job_id} still running after {timeout} s:\n{(error.stdout or '')[-4000:]}") \
                from None
    (tmp_path / "job.log").write_text(result.stdout)
    result.job_id = job_id
    return result


def _assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"Job '{result.job_id}' succeeded" in result.stdout, result.stdout[-4000:]


@pytest.mark.slow
def test_job_submit_with_token_auth_runs_raylayers_world(tmp_path):
    out = tmp_path / "w"
    result = submit_job(["raylayers", "world", "--out", str(out), "--scale", "tiny"], tmp_path)
    _assert_succeeded(result)
    assert (out / "world.json").is_file()


@pytest.mark.slow
def test_job_submit_runs_a_search_on_the_cluster(tmp_path):
    """`raylayers search` as a Ray job: the driver joins the head through RAY_ADDRESS (replay objective: no
    training, so the test checks the submission path, Tune on the cluster and the outputs)."""
    import pyarrow.parquet as pq

    from raylayers.search.replay import single_layer_table, write_lrs, write_table

    lrs = write_lrs(tmp_path / "lrs" / "lrs.json")
    table = write_table(tmp_path / "table.parquet", single_layer_table())
    space = tmp_path / "space.yaml"
    space.write_text(f"lrs: {{file: {lrs}}}\nspace: {{num_layers: [1]}}\nbudget: {{trials: 3}}\n")
    out = tmp_path / "search"
    result = submit_job(["raylayers", "search", "--space", str(space), "--out", str(out),
                         "--objective", f"table:{table}"], tmp_path)
    _assert_succeeded(result)
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows)
    assert (out / "report.md").is_file() and (out / "best_config.yaml").is_file()
