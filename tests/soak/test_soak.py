"""The soak's short form in the suite: ``python -m tests.soak --seconds 30`` as a subprocess.

It must end with no unexpected outcome (every call OK, or the error, DEADLINE_EXCEEDED or
CANCELLED its plan asked for), no error logged, the fds it had at its baseline, and RSS within a
few MiB of it.
The soak measures its baseline after a warm-up and its end after the same closing, both after
gc and ``malloc_trim``; glibc's mmap threshold is pinned (``MALLOC_MMAP_THRESHOLD_``) because
its default, dynamic one moves 1 MiB messages into the heap after the first is freed, and the
heap's fragmentation then shows as 40 MiB of "growth" that is the allocator's, not ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from peers import GRPCIO_AVAILABLE

REPO_ROOT = Path(__file__).resolve().parents[2]
SECONDS = 30
#: RSS growth measured here (2-core VM shared with other work, CPython 3.11, pinned mmap
#: threshold): +6.8 and +7.6 MiB over 30 s, +9.0 MiB over 120 s; PyPy 3.9: +7.2 MiB over 20 s.
#: Before the blocking server stopped holding finished calls, 30 s grew +16.5 MiB (at 121
#: calls/s; more calls, more growth).
MAX_RSS_GROWTH_MIB = 12.0
#: PyPy's RSS also holds the machine code its JIT writes as traces warm up during the run (and
#: its GC's heap sizing): +7.2 and +19.0 MiB measured, live objects +1,517 and +3,318. There the
#: object count is the leak check and the RSS bound only catches a runaway.
if sys.implementation.name == "pypy":
    MAX_RSS_GROWTH_MIB = 40.0
#: Python objects alive after closing, over the baseline: +233 to +886 measured (CPython),
#: +3,318 (PyPy); +16,503 with the leak above.
MAX_OBJECT_GROWTH = 8000


@pytest.mark.time_limit(SECONDS + 150)
def test_a_30_second_soak_ends_clean() -> None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    argv = [
        sys.executable,
        "-m",
        "tests.soak",
        "--seconds",
        str(SECONDS),
        "--warmup",
        "5",
        "--interval",
        "10",
        "--max-rss-growth-mib",
        str(MAX_RSS_GROWTH_MIB),
    ]
    if not GRPCIO_AVAILABLE:
        argv += ["--grpcio-connections", "0"]
    # In a session of its own, so that a soak that overruns is killed with its children (its
    # grpcio client process) rather than leaving them behind.
    proc = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=SECONDS + 120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        overran = f"the soak overran its time and was killed:\n{stdout}{stderr}"
        raise AssertionError(overran) from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of the soak's still running
    output = stdout + stderr
    lines = [line for line in stdout.splitlines() if line.startswith("SUMMARY ")]
    assert lines, f"no summary (exit status {proc.returncode}):\n{output}"
    summary = json.loads(lines[-1][len("SUMMARY ") :])
    assert summary["calls"] > 0, output
    assert summary["unexpected"] == {}, output
    assert summary["errors_logged"] == 0, output
    assert summary["fd_growth"] <= 0, output
    assert summary["rss_growth_mib"] < MAX_RSS_GROWTH_MIB, output
    objects = summary["final"]["objects"] - summary["baseline"]["objects"]
    assert objects < MAX_OBJECT_GROWTH, output
    assert proc.returncode == 0, output
