"""The one place raylayers starts (or joins) Ray.

Joins the cluster named by `RAY_ADDRESS` (a `ray job submit` entrypoint, a cluster driver); otherwise starts a
local one with the dashboard on loopback (`ray[default]`: without it an early-stopped Tune trial leaks its placement
group). Workers' logs stay out of the terminal unless `RAYLAYERS_RAY_LOGS=1`.
"""

from __future__ import annotations

import os

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
    with keeping_handlers():  # ray.init makes SIGTERM a bare sys.exit; ours say where to resume (interrupts.py)
        ray.init(logging_level="ERROR", log_to_driver=os.environ.get("RAYLAYERS_RAY_LOGS", "0") == "1", **kwargs)
