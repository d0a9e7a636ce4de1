"""Supervised child processes: prefixed output lines, restart with backoff, graceful stop.

Child.start()  → spawn (own session, so a terminal's Ctrl-C reaches only the supervisor)
  ├─ pump      every output line as `[name] line`, colour codes removed
  └─ watch     on an unexpected exit: wait (backoff 1, 2, 4 … 30 s), spawn again
Child.stop()   → stop signal, wait up to the grace period (less when forced), then SIGKILL
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

from .plan import ChildSpec

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LINE_LIMIT = 4 * 1024 * 1024
_PR_SET_PDEATHSIG = 1
SUPERVISOR = "up"


def prefixed(name: str, raw: bytes | str) -> str:
    """`[name] text` without colour codes or the trailing newline."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return f"[{name}] {_ANSI.sub('', text.rstrip(chr(10)).rstrip(chr(13)))}"


class Output:
    """Where every line goes: one stream, written whole lines at a time."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    def line(self, name: str, text: bytes | str) -> None:
        try:
            self._stream.write(prefixed(name, text) + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reader went away (a closed pipe): keep supervising anyway

    def say(self, text: str) -> None:
        """A line of the supervisor's own."""
        self.line(SUPERVISOR, text)


class Backoff:
    """Restart delays that double from `base` up to `cap`; a run that lasted `healthy_after`
    seconds resets them, so a crash after hours of work restarts at once."""

    def __init__(self, base: float = 1.0, cap: float = 30.0, healthy_after: float = 60.0) -> None:
        self.base, self.cap, self.healthy_after = base, cap, healthy_after
        self._next = base

    def delay(self, ran_for: float) -> float:
        if ran_for >= self.healthy_after:
            self._next = self.base
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A pre-exec hook asking Linux to signal the child when the supervisor dies (even by
    SIGKILL), so no service outlives it; elsewhere a no-op."""

    def hook() -> None:
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)

    return hook


async def spawn(spec: ChildSpec) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *spec.argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=spec.env,
        start_new_session=True,
        preexec_fn=_die_with_parent(int(spec.stop_signal)),
        user=spec.user,
        limit=_LINE_LIMIT,
    )


async def pump(
    name: str,
    stream: asyncio.StreamReader,
    output: Output,
    on_line: Callable[[str], None] | None = None,
) -> None:
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line over the limit: pass on what there is
            raw = await stream.read(_LINE_LIMIT)
        if not raw:
            return
        output.line(name, raw)
        if on_line is not None:
            on_line(raw.decode(errors="replace").rstrip())


class Child:
    """One supervised process, restarted after every unexpected exit until `stop()`."""

    def __init__(
        self,
        spec: ChildSpec,
        output: Output,
        *,
        on_line: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.spec = spec
        self._output = output
        self._on_line = on_line
        self._backoff = backoff or Backoff()
        self._stopping = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.pids: list[int] = []
        self.restarts = 0
        self.exit_code: int | None = None  # of the last run; set when it ends

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Spawn the first run (errors such as a missing binary surface here), then watch it."""
        self._proc = await spawn(self.spec)
        self._task = asyncio.create_task(self._watch(self._proc), name=f"child-{self.name}")

    async def _run_once(self, proc: asyncio.subprocess.Process) -> int:
        self.pids.append(proc.pid)
        self._output.say(f"{self.name} started (pid {proc.pid})")
        assert proc.stdout is not None
        pumping = asyncio.create_task(pump(self.name, proc.stdout, self._output, self._on_line))
        code = await proc.wait()
        # A grandchild may hold the pipe open; do not wait on it for ever.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pumping), 2.0)
        pumping.cancel()
        self.exit_code = code
        return code

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        while True:
            started = time.monotonic()
            code = await self._run_once(proc)
            if self._stopping.is_set() or not self.spec.restart:
                return
            self.restarts += 1
            delay = self._backoff.delay(time.monotonic() - started)
            self._output.say(f"{self.name} exited with {code}; restarting in {delay:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            try:
                proc = self._proc = await spawn(self.spec)
            except OSError as exc:
                self._output.say(f"{self.name} could not be started again: {exc}")
                return
            if self._stopping.is_set():  # stop() came while it was being spawned
                proc.send_signal(self.spec.stop_signal)

    async def wait(self) -> int | None:
        """Until the child ends for good (one-shot children, or after `stop()`)."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.exit_code

    async def stop(self, grace: float, force: asyncio.Event) -> int | None:
        """Stop signal, up to `grace` seconds (or until `force`), then SIGKILL. Returns the exit
        code of the last run (None if it never ran)."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.spec.stop_signal)
            if not await _ended_within(proc, grace, force):
                self._output.say(f"{self.name} did not stop within {grace:g} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.exit_code


async def _ended_within(
    proc: asyncio.subprocess.Process, grace: float, force: asyncio.Event
) -> bool:
    ended = asyncio.ensure_future(proc.wait())
    forced = asyncio.ensure_future(force.wait())
    try:
        await asyncio.wait({ended, forced}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if not ended.done():
        ended.cancel()
        return False
    return True
