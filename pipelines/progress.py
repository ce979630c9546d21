"""Progress for long work: a live bar on a terminal, a line every few seconds otherwise.

Work that runs inside Beam reports through :func:`report` when the runner executes in this process
(the embedded default). On a remote runner nothing is registered and :func:`report` is a no-op; the
job's Beam metrics carry the same counts there.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Reporter:
    """Tracks named tasks; renders with rich on a TTY, plain lines on pipes (CI logs)."""

    def __init__(self, *, stream=None, interval: float = 5.0, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.interval = interval
        self.enabled = enabled
        self._lock = threading.Lock()
        self._totals: dict[str, float | None] = {}
        self._done: dict[str, float] = {}
        self._last_line = 0.0
        self._rich: Progress | None = None
        self._ids: dict[str, TaskID] = {}

    def __enter__(self) -> Reporter:
        if self.enabled and self.stream.isatty():
            self._rich = Progress(
                TextColumn("{task.description:<24}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None
        elif self.enabled and self._done:
            self._print_line(force=True)

    def task(self, name: str, total: float | None = None) -> None:
        with self._lock:
            self._totals[name] = total
            self._done.setdefault(name, 0)
            if self._rich is not None and name not in self._ids:
                self._ids[name] = self._rich.add_task(name, total=total)

    def advance(self, name: str, amount: float = 1) -> None:
        if not self.enabled:
            return
        with self._lock:
            if name not in self._done:
                self._totals[name] = None
                self._done[name] = 0
                if self._rich is not None:
                    self._ids[name] = self._rich.add_task(name, total=None)
            self._done[name] += amount
            if self._rich is not None:
                self._rich.update(self._ids[name], advance=amount)
            else:
                self._print_line()

    def _print_line(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_line < self.interval:
            return
        self._last_line = now
        parts = []
        for name, done in self._done.items():
            total = self._totals.get(name)
            parts.append(f"{name} {done:,.0f}/{total:,.0f}" if total else f"{name} {done:,.0f}")
        print("progress: " + "; ".join(parts), file=self.stream, flush=True)


_current: Reporter | None = None


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Make ``reporter`` the target of :func:`report` for the duration of the block."""
    global _current
    previous, _current = _current, reporter
    try:
        with reporter:
            yield reporter
    finally:
        _current = previous


def report(task: str, amount: float = 1) -> None:
    if _current is not None:
        _current.advance(task, amount)


def declare(task: str, total: float | None) -> None:
    if _current is not None:
        _current.task(task, total)
