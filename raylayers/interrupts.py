"""Ctrl-C and SIGTERM: stop cleanly, say where to resume, exit 130/143, leave no Ray process behind.

Ray installs its own handlers where a command would need ours: `ray.init` makes SIGTERM a plain `sys.exit`, Ray
Train's `fit()` turns SIGINT into a "graceful abort" that ends in exit 1 with nothing said, and Tune's `fit()` turns
the first SIGINT into a quiet early end of the search (whose summary would then read as if it had finished). So:
- `handling_interrupts()` (the CLI, around `train`, `search` and `demo`) makes SIGINT and SIGTERM raise
  `Interrupted` in the main thread, once; a second signal while we clean up exits at once;
- `init_ray` keeps those handlers across `ray.init` (`keeping_handlers`);
- a blocking Ray call (`TorchTrainer.fit`, `Tuner.fit`) runs through `blocking()`, in a helper thread: Ray Train and
  Tune install their handlers only from the main thread (as they do inside a Tune trial), and the main thread waits
  where a signal can reach it. When one does, the helper thread is ended first (`_wind_down`): Ray's core worker
  ends the whole process, with exit code 1, if any thread calls into Ray after `ray.shutdown`, and a Tune loop
  left running calls into it every 0.1 s;
The CLI then shuts Ray down (the local cluster we started goes with it: head, dashboard, agents, workers) and prints
one line with where to resume. Checkpoints are not trusted to have been written whole: a resumed run picks the
newest checkpoint on disk that is complete (`raylayers.train.checkpoint.newest_complete`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)
WIND_DOWN_S = 3.0  # how long an interrupted wait gives the helper thread to end before Ray is shut down


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt: no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them


_active = False


def _handler(signum, frame):
    # the first signal raises; a second one (a user pressing Ctrl-C again while we clean up) exits at once
    for other in SIGNALS:
        signal.signal(other, lambda s, f: os._exit(128 + s))
    raise Interrupted(signum)


@contextlib.contextmanager
def handling_interrupts():
    """SIGINT and SIGTERM raise `Interrupted` in the main thread inside the block (a no-op off the main thread)."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    was_active = _active
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    _active = True
    try:
        yield
    finally:
        _active = was_active
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def active() -> bool:
    """Whether an outer `handling_interrupts` block is running (a command run by another, as the demo runs its
    steps: the outermost one reports the interrupt)."""
    return _active


@contextlib.contextmanager
def keeping_handlers():
    """Whatever handlers SIGINT and SIGTERM have before the block, they have after it (`ray.init` replaces them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    try:
        yield
    finally:
        if _active:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def blocking(function, *args, **kwargs):
    """`function(*args, **kwargs)` in a helper thread while the main thread waits, so that Ray's own SIGINT handlers
    stay out and ours can interrupt the wait; its result or its exception, as if called directly. Without our
    handlers (a library caller, a Tune trial) it is a plain call."""
    if not _active or threading.current_thread() is not threading.main_thread():
        return function(*args, **kwargs)
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as err:  # handed to the caller's thread as is
            outcome["error"] = err

    thread = threading.Thread(target=run, name=f"raylayers-{getattr(function, '__name__', 'call')}", daemon=True)
    try:
        thread.start()  # inside the try: the signal may come while the thread starts
        while thread.is_alive():
            thread.join(timeout=0.5)  # a signal's handler runs here, in the main thread
    except Interrupted:
        _wind_down(thread)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class _WoundDown(BaseException):
    """Raised inside an interrupted helper thread: a BaseException, so the `except Exception` clean-ups of Tune's
    loop (which call into Ray) are skipped; `ray.shutdown` cleans up after it."""


def _wind_down(thread: threading.Thread) -> None:
    """End the helper thread of an interrupted `blocking` call before Ray is shut down: `_WoundDown` is raised in
    it at its next Python instruction (Tune's loop runs one every 0.1 s) and we wait up to WIND_DOWN_S for it to end.
    A thread blocked inside one Ray call (Train's `fit` waits on a single `ray.get`) keeps the exception pending:
    it is raised as soon as `ray.shutdown` ends that call, before the thread can make another. CPython has no
    public way to stop another thread, hence its C API (`PyThreadState_SetAsyncExc`) through ctypes."""
    for _ in range(100):  # `start` was interrupted before the new thread had its id: it gets one at once
        if thread.ident is not None:
            break
        time.sleep(0.01)
    else:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_WoundDown))
    thread.join(timeout=WIND_DOWN_S)


def stop_ray() -> None:
    """After an interrupt: disconnect from Ray, and when this process started the local cluster, stop it (its
    head, dashboard and agents, and every worker, go with `ray.shutdown`)."""
    import sys

    if "ray" not in sys.modules:
        return
    import ray

    with contextlib.suppress(Exception):
        if ray.is_initialized():
            ray.shutdown()
