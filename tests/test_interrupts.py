"""Ctrl-C and SIGTERM in the main thread while Ray's blocking calls run in a helper thread (raylayers.interrupts).

The commands themselves, interrupted for real: tests/train/test_train_run.py (train), tests/search/test_tuner.py
(search) and tests/test_cli.py (demo)."""

import os
import signal
import threading

import pytest

from raylayers.interrupts import Interrupted, active, blocking, handling_interrupts, keeping_handlers


def test_blocking_returns_the_value_and_raises_the_error_of_the_call():
    with handling_interrupts():
        assert blocking(lambda a, b=0: a + b, 2, b=3) == 5
        with pytest.raises(ValueError, match="bad"):
            blocking(lambda: (_ for _ in ()).throw(ValueError("bad")))
    assert blocking(lambda: threading.current_thread().name) == threading.main_thread().name  # plain call outside


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_interrupts_the_wait_for_a_blocking_call(signum, code, monkeypatch):
    import raylayers.interrupts as interrupts

    monkeypatch.setattr(interrupts, "WIND_DOWN_S", 0.1)  # the call below stays blocked until `released` is set
    released = threading.Event()

    def ray_call():  # stands for Tuner.fit / TorchTrainer.fit: it blocks until its work is done
        os.kill(os.getpid(), signum)  # delivered to the main thread, which is waiting for us
        released.wait()
        return "finished"

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Interrupted) as caught:
        with handling_interrupts():
            assert active()
            blocking(ray_call)
    released.set()
    assert caught.value.exit_code == code and caught.value.name == signal.Signals(signum).name
    assert not active()
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are put back


def test_the_call_runs_off_the_main_thread_so_ray_installs_no_sigint_handler():
    with handling_interrupts():
        ours = signal.getsignal(signal.SIGINT)
        name = blocking(lambda: threading.current_thread().name)
        assert name != threading.main_thread().name
        assert signal.getsignal(signal.SIGINT) is ours


def test_handlers_replaced_inside_keeping_handlers_come_back():
    with handling_interrupts():
        ours = signal.getsignal(signal.SIGTERM)
        with keeping_handlers():  # what init_ray wraps ray.init in: it sets SIGTERM to a bare sys.exit
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGTERM) is ours


def test_nested_blocks_keep_the_outer_one_active():
    with handling_interrupts():
        with handling_interrupts():  # a demo step: a command run by the demo's main
            assert active()
        assert active()
    assert not active()


@pytest.mark.parametrize("blocked_in_c", [False, True], ids=["python-loop", "one-blocking-call"])
def test_an_interrupted_wait_ends_the_helper_thread_before_anything_else_runs_in_it(monkeypatch, blocked_in_c):
    """Ray's core worker ends the whole process (exit 1) when a thread calls into Ray after `ray.shutdown`, so the
    helper must make no further call once the main thread is interrupted: a loop (Tune's) ends at once; a thread
    inside one blocking call (Train's `ray.get`) ends as soon as that call returns, running nothing after it."""
    import time

    import raylayers.interrupts as interrupts

    monkeypatch.setattr(interrupts, "WIND_DOWN_S", 0.2)
    helper, calls_after = [], []

    def ray_call():
        helper.append(threading.current_thread())
        os.kill(os.getpid(), signal.SIGINT)
        if blocked_in_c:
            time.sleep(1.5)  # one call in C: the pending exception is raised when it returns
            calls_after.append("after the blocking call")
        else:
            while True:  # Tune's loop: a short wait on Ray, then the next step
                time.sleep(0.01)
                calls_after.append("a next step")
                if len(calls_after) > 10_000:
                    return

    with pytest.raises(Interrupted):
        with handling_interrupts():
            blocking(ray_call)
    helper[0].join(timeout=30)
    assert not helper[0].is_alive()
    if blocked_in_c:
        assert calls_after == []
    else:
        assert len(calls_after) < 10_000
