"""The one place raylayers starts (or joins) Ray.

Joins the cluster named by `RAY_ADDRESS` (a `ray job submit` entrypoint, a cluster driver); otherwise starts a
local one with the dashboard on loopback (`ray[default]`: without it an early-stopped Tune trial leaks its placement
group). Workers' logs stay out of the terminal unless `RAYLAYERS_RAY_LOGS=1`. A cluster that does not start, or a
RAY_ADDRESS that does not answer, is one line (a `UserError`), not Ray's traceback.
"""

from __future__ import annotations

import os

from raylayers.errors import UserError
from raylayers.interrupts import keeping_handlers


def init_ray(num_cpus: int | None = None) -> None:
    """Start or join Ray once per process (a no-op when it is already up)."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    # without RAY_ADDRESS: a cluster of our own ("local"), never one another process happens to run on the machine
    # (ray.init() alone joins the last cluster started here, and then refuses num_cpus)
    kwargs = {"address": address} if address else {"address": "local", "num_cpus": num_cpus or os.cpu_count(),
                                                  "include_dashboard": True, "dashboard_host": "127.0.0.1"}
    if not address:
        # Ray Train starts a preemption watcher (one more process per training run, about half a CPU-second to
        # boot) that looks for cloud spot-instance notices; a machine's own cluster gets none. The processes of
        # the cluster started here inherit this; a user's own setting wins
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    try:
        with keeping_handlers():  # ray.init makes SIGTERM a bare sys.exit; ours say where to resume (interrupts.py)
            ray.init(logging_level="ERROR", log_to_driver=os.environ.get("RAYLAYERS_RAY_LOGS", "0") == "1",
                     **kwargs)
    except Exception as err:
        # Ray raises these types (a bare Exception for "node timed out during startup") when its processes do not
        # come up or RAY_ADDRESS does not answer: the machine's state, not a bug. Others (a TypeError...) are ours
        if type(err) not in (Exception, RuntimeError, ConnectionError, TimeoutError):
            raise
        raise UserError(_start_failure(address, err)) from None


def _start_failure(address: str | None, err: BaseException) -> str:
    """One line for a Ray that did not start or could not be joined, with where to look."""
    reason = " ".join(str(err).split())[:300] or type(err).__name__
    if address:
        return f"could not join the Ray cluster at RAY_ADDRESS={address}: {reason}"
    return (f"could not start a local Ray cluster: {reason} (Ray's logs: /tmp/ray/session_latest/logs; an overloaded "
            "machine or a full /tmp are the usual causes: run it again when they are not)")
