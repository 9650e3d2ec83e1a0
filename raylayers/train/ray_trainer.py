"""The `TorchTrainer` every raylayers run builds: Ray's own, minus a one-second wait at the end of every `fit()`.

Ray Train V2 (Ray 2.60 here) starts a detached `PlacementGroupCleaner` actor per `fit()`: if the controller dies
ungracefully, it removes the run's placement group. When the run ends well, the controller stops it and waits for
the answer. The cleaner's monitor thread sleeps in `queue.get(timeout=check_interval_s)` (1 s) and only then sees
the stop, so every `fit()` returned up to a second after training ended. Measured here: a train function that
returns at once, to `fit()`'s return, 1.00-1.03 s in 5 of 5 fits, 0.03-0.06 s without the wait; in demo-recipe
trials, the worker's last record to `fit()`'s return, 0.36-0.77 s and 0.05-0.13 s.

Here the controller sends the stop and does not wait for it. The cleaner then does what Ray's does:
- the monitor wakes within a second and sees the stop, or sees the controller gone. In that case the placement
  group is already removed (the worker group's shutdown removed it), so the cleaner only exits.
- a controller that dies before it sends the stop is cleaned up as before.
Nothing else changes; the controller, workers, placement group and checkpoints are Ray's. The callback class lives
in `raylayers.ray_controller`, with the backend config, so that the controller unpickles it without importing torch.

This leans on two Ray internals: `DataParallelTrainer._create_default_callbacks` and the cleaner callback's
`_stop_cleaner`. `trainer_class()` checks that both are there and falls back to Ray's `TorchTrainer` otherwise (a
Ray release that moved them). Without them, a run is up to a second longer per `fit()` and otherwise the same.
"""

from __future__ import annotations

from ray.train.torch import TorchTrainer

from raylayers.ray_controller import CleanerStoppedWithoutWaiting, RayCleanerCallback


def _has_internals() -> bool:
    return (RayCleanerCallback is not None and callable(getattr(TorchTrainer, "_create_default_callbacks", None))
            and callable(getattr(RayCleanerCallback, "_stop_cleaner", None)))


class RaylayersTorchTrainer(TorchTrainer):
    """Ray's `TorchTrainer`, with `CleanerStoppedWithoutWaiting` in place of Ray's cleaner callback."""

    def _create_default_callbacks(self):
        return [CleanerStoppedWithoutWaiting() if type(callback) is RayCleanerCallback else callback
                for callback in super()._create_default_callbacks()]


def trainer_class() -> type:
    """`RaylayersTorchTrainer`, or Ray's `TorchTrainer` when this Ray lacks the internals it needs."""
    return RaylayersTorchTrainer if _has_internals() else TorchTrainer
