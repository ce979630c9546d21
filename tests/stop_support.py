"""For the tests that stop `vigil run` (Ctrl-C, SIGTERM, SIGKILL): a process whose output is
drained as it runs and which, if it does not end in time, prints every thread's stack before it
is killed; and a signal in the moment Beam starts a bundle's state-sampler thread."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Watched:
    """A process with both pipes drained as it writes (a full pipe would block it mid-run)."""

    proc: subprocess.Popen
    what: str  # what the failure calls it: "the session (kill plan ...)"
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def drain(self) -> None:
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            reader = threading.Thread(target=lines.extend, args=(stream or [],), daemon=True)
            reader.start()
            self.readers.append(reader)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Its exit code and stderr; if it has not ended within ``timeout`` seconds, it prints
        where it is stuck (every thread's stack, for a launcher that registers
        ``faulthandler`` on SIGUSR1), is killed, and the test fails with that."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            self.proc.kill()
            self.proc.wait()
            for reader in self.readers:
                reader.join(timeout=10)
            printed = "".join(self.out)[-2000:]
            raise AssertionError(
                f"{self.what} did not end within {timeout:g}s; its stdout ends with:\n{printed}\nits "
                f"stderr, with its threads' stacks:\n{''.join(self.err)[-20000:]}"
            ) from None
        for reader in self.readers:
            reader.join(timeout=timeout)
        return self.proc.returncode, "".join(self.err)


@dataclass
class SamplerWindow:
    sent: list[int] = field(default_factory=list)
    #: each sampler started, with the thread it started
    samplers: list[tuple[Any, set[threading.Thread]]] = field(default_factory=list)

    def running(self) -> list[threading.Thread]:
        return [t for _, threads in self.samplers for t in threads if t.is_alive()]


@contextlib.contextmanager
def signal_as_a_sampler_starts(monkeypatch: pytest.MonkeyPatch, signum: int) -> Iterator[SamplerWindow]:
    """``signum`` raised in this process as Beam starts its first bundle's state sampler: its
    thread has started, Beam has not yet noted that it did. An interrupt raised there leaves the
    thread running (Beam stops only a sampler it knows started), and the interpreter waits for
    that (non-daemon) thread at exit: a process that printed its last words never ends. Any
    sampler still running at the end is stopped, so that pytest itself can exit."""
    from apache_beam.runners.worker import statesampler

    window = SamplerWindow()

    def start(self: Any) -> None:  # StateSampler.start, with the signal in its window
        self.tracked_thread = threading.current_thread()
        statesampler.set_current_tracker(self)
        before = set(threading.enumerate())
        super(statesampler.StateSampler, self).start()
        window.samplers.append((self, set(threading.enumerate()) - before))
        if not window.sent:
            window.sent.append(signum)
            signal.raise_signal(signum)
        self.started = True

    with monkeypatch.context() as patched:
        patched.setattr(statesampler.StateSampler, "start", start)
        try:
            yield window
        finally:
            for sampler, threads in window.samplers:
                if any(t.is_alive() for t in threads) and not sampler.finished:
                    sampler.stop()
