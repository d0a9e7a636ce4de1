"""Child processes under the supervisor: restart after a crash, clean stop, SIGKILL after grace.

Real processes (small Python scripts), no servers.
"""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from services.supervisor.children import Backoff, Child, Output
from services.supervisor.plan import ChildSpec
from tests.helpers import eventually

# Crashes on its first run (no marker file yet), then runs until SIGTERM and exits 0.
CRASH_ONCE = """
import pathlib, signal, sys, time
marker = pathlib.Path(sys.argv[1])
if not marker.exists():
    marker.write_text("ran")
    print("crashing", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("\\x1b[32mready\\x1b[0m", flush=True)
while True:
    time.sleep(0.05)
"""
IGNORES_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def _child(code: str, *args: str, out: io.StringIO) -> Child:
    spec = ChildSpec("demo", (sys.executable, "-c", code, *args))
    return Child(spec, Output(out), backoff=Backoff(base=0.05, cap=0.1))


async def test_a_crashed_child_is_restarted_and_stops_cleanly(tmp_path: Path) -> None:
    out = io.StringIO()
    child = _child(CRASH_ONCE, str(tmp_path / "marker"), out=out)
    await child.start()
    await eventually(lambda: "[demo] ready" in out.getvalue(), timeout=15)
    assert child.restarts == 1 and len(child.pids) == 2 and child.running
    assert "\x1b" not in out.getvalue()
    assert await child.stop(5, asyncio.Event()) == 0
    assert not child.running


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    out = io.StringIO()
    child = _child(IGNORES_SIGTERM, out=out)
    await child.start()
    await eventually(lambda: "[demo] ready" in out.getvalue(), timeout=15)
    assert await child.stop(0.5, asyncio.Event()) == -9
    assert child.restarts == 0  # a stop is not a crash


async def test_a_forced_stop_skips_the_rest_of_the_grace() -> None:
    out = io.StringIO()
    child = _child(IGNORES_SIGTERM, out=out)
    await child.start()
    await eventually(lambda: "[demo] ready" in out.getvalue(), timeout=15)
    force = asyncio.Event()
    force.set()
    assert await asyncio.wait_for(child.stop(600, force), 10) == -9


async def test_a_one_shot_child_is_not_restarted() -> None:
    spec = ChildSpec("job", (sys.executable, "-c", "raise SystemExit(4)"), restart=False)
    child = Child(spec, Output(io.StringIO()))
    await child.start()
    assert await asyncio.wait_for(child.wait(), 15) == 4
    assert child.restarts == 0
