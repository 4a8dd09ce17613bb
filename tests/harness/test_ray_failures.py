"""The Ray executor when Ray fails (issue 13, failures): an address that is not a Ray cluster, a
cluster lost mid-run, a signal during Ray's start-up, a cluster already on the machine.

Every network address here is loopback: the clusters these tests start (`ray start --head`) run
with Ray's "clusters" off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0), so their node is 127.0.0.1 and
every server of theirs listens on it alone.  Their processes carry a token of their own in their
environment and are killed by it: never `ray stop`, which stops every Ray instance on the machine.
"""
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.harness.processes import HOSTILE, TOKEN_VAR, Run, cli, results, usage_error, wait_for_results

pytest.importorskip("ray")  # the [ray] extra; `make test` installs it
pytestmark = pytest.mark.ray

HEAD_VAR = "CONFORMANCE_TEST_RAY_HEAD"
SLOW = ("--suite", "smoke", "--adapter", HOSTILE + "Slow", "--executor", "ray")  # 50 ms a case
RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids(var: str, token: str) -> list[int]:
    """Live processes whose environment holds var=token."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if f"{var}={token}".encode() in Path(f"/proc/{entry}/environ").read_bytes():
                    if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _commands(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return out


class Head:
    """A one-node cluster on 127.0.0.1 (`ray start --head`), with token authentication, in a
    temporary folder of its own (not /tmp/ray, where ray.init looks for a cluster)."""

    def __init__(self):
        self.port, self.token, self.auth = _free_port(), uuid.uuid4().hex, secrets.token_hex(32)
        self.temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths live in it

    def start(self) -> None:
        env = {**os.environ, HEAD_VAR: self.token, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
               "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.auth}
        env.pop("RAY_ADDRESS", None)
        p = subprocess.run([str(RAY), "start", "--head", "--port", str(self.port), "--node-ip-address", "127.0.0.1",
                            "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
                            "--temp-dir", self.temp, "--ray-client-server-port", str(_free_port()),
                            "--dashboard-agent-listen-port", str(_free_port())],
                           env=env, capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stdout + p.stderr

    def kill(self) -> None:
        """Every process of the cluster, at once (a head node lost)."""
        deadline = time.monotonic() + 30
        while (pids := _pids(HEAD_VAR, self.token)) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.2)
        assert not _pids(HEAD_VAR, self.token)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture
def head():
    h = Head()
    try:
        yield h
    finally:
        h.stop()


def _results_while_running(run: Run, cases: int, timeout: float = 120) -> None:
    """Until OUT/results.partial.jsonl holds `cases` cases; a run that exits first fails the test."""
    out = Path(run.proc.args[run.proc.args.index("--out") + 1])
    deadline = time.monotonic() + timeout
    while True:
        try:
            return wait_for_results(out / "results.partial.jsonl", cases, timeout=0.5)
        except AssertionError:
            if run.proc.poll() is not None or time.monotonic() > deadline:
                _wait(run, 30)
                raise AssertionError(f"exit {run.proc.returncode} before {cases} cases: {run.stderr[-2000:]}") from None


def _wait(run: Run, timeout: float) -> int:
    """Its exit code; a run still going after `timeout` is killed and fails the test."""
    try:
        return run.wait(timeout)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        run.wait(30)
        raise AssertionError(f"still running after {timeout:g}s: {run.stderr[-2000:]}") from None


def test_an_address_that_accepts_connections_but_never_answers_is_one_line_and_exit_2(tmp_path):
    """A black hole: a port that accepts and never says a word (Ray's own connect retries for ~10
    minutes)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    held = []

    def accept():
        while True:
            try:
                held.append(hole.accept()[0])
            except OSError:  # closed: the test is over
                return

    threading.Thread(target=accept, daemon=True).start()
    out = tmp_path / "out"
    try:
        run = Run(tmp_path, "run", "--suite", "smoke", "--adapters", "numpy-reference", "--executor", "ray",
                  "--ray-address", f"127.0.0.1:{hole.getsockname()[1]}", "--out", str(out))
        _wait(run, 60)
    finally:
        hole.close()
        for c in held:
            c.close()
    usage_error(run, "no answer as a Ray cluster within 5s")
    assert held  # it did connect
    assert run.elapsed < 20, run.elapsed
    assert not out.exists()


def test_a_cluster_lost_mid_run_keeps_what_finished_and_resume_finishes_it(tmp_path, monkeypatch, head):
    head.start()
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # the driver of a token cluster (docs/speed.md)
    monkeypatch.setenv("RAY_AUTH_TOKEN", head.auth)
    out = tmp_path / "out"
    args = (*SLOW, "--ray-address", f"127.0.0.1:{head.port}", "--out", str(out))
    run = Run(tmp_path, "run", *args, "--jobs", "1")
    _results_while_running(run, 5)
    head.kill()
    lost = time.monotonic()
    assert _wait(run, 120) == 3, run.stdout + run.stderr
    stopped = time.monotonic() - lost
    assert stopped < 30, stopped
    assert f"the Ray cluster at 127.0.0.1:{head.port} was lost" in run.stderr
    assert run.stdout.startswith("INTERRUPTED after "), run.stdout
    finished = results(out)
    assert finished and all(r["status"] == "pass" for r in finished)  # no case charged with the loss
    assert 5 <= len({r["case"] for r in finished}) < 34
    assert (out / "report.md").read_text().count("INTERRUPTED after ") >= 1
    run.assert_clean()
    head.start()  # the cluster is back, at the same address
    resumed = cli(tmp_path, "run", *args, "--resume", timeout=300)
    assert resumed.proc.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming:" in resumed.stderr
    records = results(out)
    assert len({r["case"] for r in records}) == 34 and all(r["status"] == "pass" for r in records)
    assert len({(r["case"], r["check"]) for r in records}) == len(records)  # nothing twice
    resumed.assert_clean()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_rays_start_up_stops_the_run_as_at_any_other_time(tmp_path, sig):
    """Once the local instance's GCS runs, ray.init has seconds to go (the raylet, the driver's
    connection): a signal there used to crash the process (SIGSEGV) or, for SIGTERM, exit 15 with
    nothing written.  Now the run stops once Ray is up, as an interrupted run."""
    during_start_up = 0
    for k, delay in enumerate((0.0, 0.6, 1.5)):
        out = tmp_path / f"out{k}"
        run = Run(tmp_path, "run", *SLOW, "--jobs", "1", "--out", str(out))
        deadline = time.monotonic() + 120
        while not any("gcs_server" in c for c in _commands(_pids(TOKEN_VAR, run.token))):
            assert run.proc.poll() is None and time.monotonic() < deadline, "no GCS started"
            time.sleep(0.02)
        time.sleep(delay)
        run.proc.send_signal(sig)
        assert _wait(run, 120) == 128 + sig, (delay, run.stdout, run.stderr)
        assert "Segmentation" not in run.stderr and "SIGSEGV" not in run.stderr, run.stderr
        assert run.stdout.startswith("INTERRUPTED after "), run.stdout
        assert (out / "results.jsonl").exists() and "INTERRUPTED after " in (out / "report.md").read_text()
        run.assert_clean()
        said = run.stderr.find(f"conformance: {signal.Signals(sig).name}: stopping")
        during_start_up += 0 <= said < run.stderr.find("running ")
    assert during_start_up  # at least one came before the run's first line: during ray.init


def _listening(pids: list[int]) -> list[str]:
    """The local addresses of the TCP sockets these processes listen on."""
    sockets = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":  # LISTEN
                raw = bytes.fromhex(f[1].split(":")[0])
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # words are little-endian
                address = ipaddress.ip_address(raw)
                sockets[f[9]] = str(getattr(address, "ipv4_mapped", None) or address)
    found = []
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        found += [sockets[x[8:-1]] for x in links if x.startswith("socket:[") and x[8:-1] in sockets]
    return found


def test_a_local_run_beside_a_cluster_on_the_machine_starts_its_own_instance_on_loopback(tmp_path, monkeypatch, head):
    """RAY_ADDRESS names a cluster (as a `ray start` shell would): the local run still starts
    its own instance, which takes --jobs, says so, and listens on 127.0.0.1 only."""
    head.start()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{head.port}")
    out = tmp_path / "out"
    run = Run(tmp_path, "run", *SLOW, "--jobs", "2", "--out", str(out))
    _results_while_running(run, 2)
    pids = _pids(TOKEN_VAR, run.token)
    ours, listening = _commands(pids), _listening(pids)
    assert _wait(run, 300) == 0, run.stdout + run.stderr
    first = next(x for x in run.stderr.splitlines() if x.startswith("running "))
    assert " with 2 job(s) on Ray (a local instance of its own at 127.0.0.1:" in first, first
    assert f":{head.port}" not in first
    assert any("gcs_server" in c for c in ours)  # a GCS of its own, not the cluster's
    assert listening and all(ipaddress.ip_address(a).is_loopback for a in listening), listening
    run.assert_clean()
