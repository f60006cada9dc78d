"""Servers the tests start (governance serve, mlflow server, the demo) run in a process
group of their own, and a killed test process leaves none of them behind.

Each group gets a watchdog: a small process, in a session of its own, that waits for
end-of-file on a pipe whose only writer is the test process. When the test process exits
for any reason, `kill -9` included, the kernel closes that pipe and the watchdog kills the
whole group, so the server's workers and check processes go with it. A clean stop closes
the pipe after the group is gone, and the watchdog finds nothing left to kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import IO

# Reads until end-of-file (the test process is gone, or stopped the group itself), then
# kills the group named by argv[1].
WATCHDOG = """
import os, signal, sys
group = int(sys.argv[1])
sys.stdin.buffer.read()
try:
    os.killpg(group, signal.SIGKILL)
except ProcessLookupError:
    pass
"""

# The pipe's write end and the watchdog, per group leader's pid.
_watchdogs: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}


def start_group(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log: IO[bytes],
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new process group, watched: the group dies with
    the test process."""
    process = subprocess.Popen(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    read_end, write_end = os.pipe()  # not inherited by later children (O_CLOEXEC)
    try:
        watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(process.pid)],
            stdin=read_end,
            start_new_session=True,
        )
    except BaseException:
        os.close(write_end)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        os.close(read_end)
    _watchdogs[process.pid] = (write_end, watchdog)
    return process


def stop_group(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM the group, SIGKILL what is left after `timeout` seconds, and retire its
    watchdog."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    watched = _watchdogs.pop(process.pid, None)
    if watched is not None:
        write_end, watchdog = watched
        os.close(write_end)
        watchdog.wait(timeout=10)
