"""A stop that ``vigil run`` was asked for (Ctrl-C, SIGTERM), taken where a run can stop.

A signal handler runs in the main thread wherever it happens to be, and so does what it raises.
Inside Beam's embedded runner that can be the middle of the runner's own bookkeeping, which is
not written to be interrupted there: an interrupt raised while it starts a bundle's state-sampler
thread leaves that (non-daemon) thread running for good, so the process prints its totals (or
"Aborted.") and then never exits; one raised in a weakref callback or ``__del__`` (many run as a
batch's objects are freed) is swallowed. So a batch run and a ``--follow`` session take both
signals with a :class:`Stop` (:func:`signals`). While a pipeline runs on the embedded runner it
only records the stop (:func:`request`), and the pipeline's steps call :func:`check` between
elements: it raises :class:`Stopped` there, an error in a step like any other, which Beam unwinds
properly and the run takes as the stop (what it staged is discarded). The last step to look is
the commit; a stop after it waits until the run has written its report, and a batch run then
raises it naming its commit. Outside a pipeline the handler raises it at once; the run also looks
at the record where what the handler raised may have been swallowed (a batch run once it is done,
a session before each poll). A batch run's second Ctrl-C ends the process at once.

Beam's embedded runner can run the steps in other processes (``--direct_running_mode
multi_processing``), which have flags of their own that no handler sets: while a pipeline runs
there, a stop is also written to a file (:func:`shared`) whose name those processes inherit in
:data:`STOP_FILE_ENV`, and :func:`check` looks at it a few times a second.

Outside a run nothing requests a stop, and :func:`check` costs one test of a flag.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

#: what a batch run's second Ctrl-C prints before it ends the process at once
QUIT_AT_ONCE = (
    "Aborted at once (Ctrl-C while stopping). Nothing after the archive's last commit was kept; the "
    "next `vigil run` clears what this one left (vigil verify shows the archive is intact)"
)

_requested: int | None = None  # the signal of the stop asked for
_deferring = 0  # pipelines the main thread is running, in which a stop waits for a step
#: the file a stop is written to while a pipeline runs on the embedded runner (:func:`shared`),
#: named in the environment the runner's worker processes inherit
STOP_FILE_ENV = "VIGIL_STOP_FILE"
#: how often, at most, :func:`check` looks at that file (seconds)
LOOK_EVERY = 0.2
_next_look = 0.0


class Stopped(KeyboardInterrupt):
    """The stop a signal asked for: ``signum`` is the signal (SIGINT for Ctrl-C, SIGTERM), and
    ``commit`` the commit a batch run had made before it stopped (None: it made none).

    It keeps no ``args``: Beam re-raises an error of a step as ``type(exc)(exc.args[0] + step)``
    when it can, which would make a Stopped of the step's text; with no args it re-raises a
    RuntimeError instead, with this one as its context (see :func:`pipelines.errors.causes`)."""

    def __init__(self, signum: int = signal.SIGINT, commit: str | None = None) -> None:
        super().__init__()
        self.signum = signum
        self.commit = commit

    @property
    def exit_code(self) -> int:
        """The shell's code for a process a signal ended: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + self.signum


def request(signum: int = signal.SIGINT) -> None:
    global _requested
    _requested = signum
    _write_stop_file(signum)


def _write_stop_file(signum: int) -> None:
    if path := os.environ.get(STOP_FILE_ENV):
        # the steps in this process see the flag anyway
        with contextlib.suppress(OSError), open(path, "w", encoding="ascii") as handle:
            handle.write(str(signum))


def clear() -> None:
    global _requested
    _requested = None


def requested() -> bool:
    return _requested is not None


def requested_signal() -> int | None:
    """The signal of the stop asked for, or None."""
    return _requested


def deferring() -> bool:
    """Whether the main thread is running a pipeline, so a stop is to be raised by :func:`check`."""
    return _deferring > 0


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Around what a stop is not to be raised in the middle of: a pipeline the embedded runner
    runs in this process (its own steps raise a stop requested meanwhile, :func:`check`), or a
    DuckDB query (DuckDB runs the handler while it works and turns what it raises into its own
    "Query interrupted" error; the caller looks at the stop after it, :meth:`Stop.check`)."""
    global _deferring
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers run in the main thread only: nothing to defer here
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


def check() -> None:
    """Called by the pipeline's steps between elements: raise the stop if one was asked for (in
    this process, or written to :data:`STOP_FILE_ENV`'s file for a step in a worker process)."""
    global _next_look
    if _requested is not None:
        raise Stopped(_requested)
    path = os.environ.get(STOP_FILE_ENV)
    if path is None or (now := time.monotonic()) < _next_look:
        return
    _next_look = now + LOOK_EVERY
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return  # no stop asked for (or the run is over and took its file with it)
    raise Stopped(int(text) if text.isdigit() else signal.SIGTERM)


@contextlib.contextmanager
def shared() -> Iterator[None]:
    """Around a pipeline on the embedded runner: a stop is also written to a file of a fresh
    temporary folder, named in :data:`STOP_FILE_ENV`, which the runner's worker processes inherit
    when they start (``multi_processing``); the folder goes when the pipeline ends."""
    folder = tempfile.mkdtemp(prefix="vigil-stop-")
    previous = os.environ.get(STOP_FILE_ENV)
    os.environ[STOP_FILE_ENV] = os.path.join(folder, "stop")
    try:
        if _requested is not None:
            _write_stop_file(_requested)
        yield
    finally:
        if previous is None:
            os.environ.pop(STOP_FILE_ENV, None)
        else:
            os.environ[STOP_FILE_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


class Stop:
    """What Ctrl-C and SIGTERM do while a run or a session runs: the handler of both.

    The first signal is recorded (:attr:`signum`). While :attr:`armed`, the handler also raises
    it (:meth:`stopped`), except while a pipeline runs on the embedded runner: there the
    pipeline's steps raise it (:func:`check`). What a handler raises can be swallowed where it
    lands (Python then only prints "Exception ignored in"): a ``__del__`` method or a weakref
    callback, such as those of the ``regex`` module's objects while a policy compiles, or a
    library's ``except BaseException`` that carries on; so the caller also looks at the record
    at points of its own. A repeated signal does the same as the first, except a Ctrl-C when
    ``quit_on_second_ctrl_c`` is set (a batch run): that one ends the process at once (exit code
    130), which the archive is built to survive (it survives a kill at any moment)."""

    def __init__(self, *, armed: bool = False, quit_on_second_ctrl_c: bool = False) -> None:
        #: the first signal received, or None
        self.signum: int | None = None
        #: raise on a signal (outside a pipeline): the caller has not seen the stop yet
        self.armed = armed
        self.quit_on_second_ctrl_c = quit_on_second_ctrl_c
        #: the commit the batch run has made, once it has: a stop after it names it
        self.commit: str | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def stopped(self) -> Stopped:
        return Stopped(self.signum or signal.SIGINT, self.commit)

    def check(self) -> None:
        """A safe point of the caller's: raise the stop if one was asked for."""
        if self.signum is not None:
            raise self.stopped()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT and self.quit_on_second_ctrl_c:
            os.write(2, f"\n{QUIT_AT_ONCE}\n".encode())  # no Python I/O: it may be mid-write
            os._exit(128 + signal.SIGINT)  # not waiting on anything: a kill loses nothing either
        if self.signum is None:
            self.signum = signum
        request(self.signum)
        if self.armed and not deferring():
            raise self.stopped()

    def unraisable(self, previous: Callable[[sys.UnraisableHookArgs], object]) -> Callable[..., object]:
        """``sys.unraisablehook`` while the handler is in place: a stop that a finalizer swallowed
        is this stop (recorded, honoured at the next safe point), not news for stderr."""

        def hook(unraisable: sys.UnraisableHookArgs) -> None:
            if not (self.requested and isinstance(unraisable.exc_value, KeyboardInterrupt)):
                previous(unraisable)

        return hook


_current: Stop | None = None  # the handler :func:`signals` put in place


@contextlib.contextmanager
def signals(stop: Stop | None = None) -> Iterator[Stop]:
    """``stop`` handles SIGTERM (``systemctl stop``, ``docker stop``) and Ctrl-C alike meanwhile;
    without one, a batch run's (armed, a second Ctrl-C quits), or the one already in place (the
    CLI's, which also covers the summary it prints after the run). Only the main thread can set
    handlers (elsewhere nothing changes); Ctrl-C is taken over only from Python's own handler (a
    program embedding Vigil keeps its own)."""
    global _current
    if stop is None and _current is not None:
        yield _current
        return
    stop = stop or Stop(armed=True, quit_on_second_ctrl_c=True)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    names = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        names.append(signal.SIGINT)
    previous = {name: signal.getsignal(name) for name in names}
    hook, outer = sys.unraisablehook, _current
    try:
        sys.unraisablehook = stop.unraisable(hook)
        _current = stop
        for name in names:
            signal.signal(name, stop)
        yield stop
    finally:
        stop.armed = False  # putting things back is not to be interrupted: a signal is recorded
        for name, handler in previous.items():
            # None: a handler not set from Python, which Python cannot put back
            signal.signal(name, signal.SIG_DFL if handler is None else handler)
        sys.unraisablehook = hook
        _current = outer
        clear()
