"""A stop that ``vigil run --follow`` was asked for (Ctrl-C, SIGTERM), taken where a batch can stop.

A signal handler runs in the main thread wherever it happens to be, and so does what it raises.
Inside Beam's embedded runner that can be the middle of the runner's own bookkeeping, which is
not written to be interrupted there: an interrupt raised while it starts a bundle's state-sampler
thread leaves that (non-daemon) thread running for good, so the process prints its totals and
then never exits; one raised in a weakref callback or ``__del__`` (many run as a batch's objects
are freed) is swallowed. So while a pipeline runs on the embedded runner the session's handler
only records the stop (:func:`request`), and the pipeline's steps call :func:`check` between
elements: it raises KeyboardInterrupt there, an error in a step like any other, which Beam
unwinds properly and the session takes as the stop (the batch is discarded).

Outside a session nothing requests a stop, and :func:`check` costs one test of a flag.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_requested = False
_deferring = 0  # pipelines the main thread is running, in which a stop waits for a step


def request() -> None:
    global _requested
    _requested = True


def clear() -> None:
    global _requested
    _requested = False


def requested() -> bool:
    return _requested


def deferring() -> bool:
    """Whether the main thread is running a pipeline, so a stop is to be raised by :func:`check`."""
    return _deferring > 0


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Around a pipeline the embedded runner runs in this process: a stop requested meanwhile is
    raised by the pipeline's own steps (:func:`check`), not by the signal handler."""
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
    """Called by the pipeline's steps between elements: raise the stop if one was asked for."""
    if _requested:
        raise KeyboardInterrupt
