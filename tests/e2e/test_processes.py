"""A test process killed with `kill -9` leaves no server behind: the process group a test
starts (tests/processes.py) dies with it, grandchildren included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Stands for a pytest process: starts a "server" that has a child of its own, says the
# group's id, and waits to be killed.
TEST_PROCESS = """
import sys, time
from tests.processes import start_group
server = start_group(
    ["sh", "-c", "sleep 600 & sleep 600"], env={"PATH": "/usr/bin:/bin"}, log=sys.stderr.buffer
)
print(server.pid, flush=True)
time.sleep(600)
"""


def _alive(group: int) -> list[int]:
    """The processes of `group` that are still running (zombies waiting for a reaper are
    dead: they hold no port, no file and no memory)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _parent, process_group = stat.rsplit(")", 1)[1].split()[:3]
        if int(process_group) == group and state != "Z":
            alive.append(int(entry.name))
    return alive


def test_a_test_process_killed_with_sigkill_takes_its_servers_with_it() -> None:
    test_process = subprocess.Popen(
        [sys.executable, "-c", TEST_PROCESS],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert test_process.stdout is not None
    group = int(test_process.stdout.readline())
    deadline = time.monotonic() + 10
    while len(_alive(group)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_alive(group)) >= 2, "the server and its child should be running"

    os.kill(test_process.pid, signal.SIGKILL)
    test_process.wait()

    deadline = time.monotonic() + 10
    while _alive(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _alive(group)
    if left:
        os.killpg(group, signal.SIGKILL)
    assert not left, f"processes {left} of the server's group outlived the killed test process"
