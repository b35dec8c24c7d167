"""ganlab.summary.is_alive, the one liveness check of a run (resume and ganlab.compare), on constructed
summaries of real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from ganlab.summary import is_alive


@pytest.fixture
def sleeper():
    """Start a process sleeping with the given command-line arguments (returned once it runs: before its
    exec its command line is still this one's); all are killed at the end."""
    procs: list[subprocess.Popen] = []
    code = "import time; print('ready', flush=True); time.sleep(60)"

    def start(*argv: str) -> int:
        procs.append(subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, text=True))
        assert procs[-1].stdout.readline() == "ready\n"
        return procs[-1].pid

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def running(pid: object, host: str | None = None) -> dict[str, object]:
    return {"status": "running", "pid": pid, "host": socket.gethostname() if host is None else host}


def test_a_live_ganlab_process_is_alive(sleeper):
    assert is_alive(running(sleeper("ganlab.train", "seed=1")))


def test_a_finished_process_is_not(sleeper):
    proc = subprocess.Popen([sys.executable, "-c", "pass", "ganlab.train"])
    proc.wait()
    assert not is_alive(running(proc.pid))


def test_another_host_or_status_is_not_alive_here(sleeper):
    pid = sleeper("ganlab.train")
    assert not is_alive(running(pid, host=f"not-{socket.gethostname()}"))
    assert not is_alive({**running(pid), "status": "completed"})


def test_a_pid_reused_by_another_program_is_not_alive(sleeper):
    pid = sleeper("something.else")
    if not os.path.isdir("/proc"):
        pytest.skip("no /proc: the owner of a pid cannot be checked")
    assert not is_alive(running(pid))


@pytest.mark.parametrize("pid", [None, "123", 0, -1, True])
def test_a_summary_without_a_usable_pid_is_not_alive(pid):
    assert not is_alive(running(pid))
