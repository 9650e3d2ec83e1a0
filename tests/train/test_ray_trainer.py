"""raylayers.train.ray_trainer: Ray's TorchTrainer, which stops its placement-group cleaner without waiting for it.
The cleaner must still end after each run, and nothing else in Ray's callbacks may change."""

import time

import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

from raylayers.ray_session import init_ray
from raylayers.train.ray_trainer import CleanerStoppedWithoutWaiting, RaylayersTorchTrainer, trainer_class


def _trainer(cls, storage, name):
    def returns_at_once(config):  # (defined here: Ray pickles it by value; the workers cannot import tests/)
        ray.train.get_context()

    return cls(returns_at_once, scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
               torch_config=TorchConfig(backend="gloo"), run_config=RunConfig(name=name, storage_path=str(storage)))


def test_only_the_cleaner_callback_differs_from_rays(tmp_path):
    assert trainer_class() is RaylayersTorchTrainer  # this Ray has the internals it relies on
    ours = _trainer(RaylayersTorchTrainer, tmp_path, "ours")._create_default_callbacks()
    stock = _trainer(TorchTrainer, tmp_path, "stock")._create_default_callbacks()
    assert any(type(callback) is PlacementGroupCleanerCallback for callback in stock)
    assert [type(callback) for callback in ours] == [
        CleanerStoppedWithoutWaiting if type(callback) is PlacementGroupCleanerCallback else type(callback)
        for callback in stock]


def _live_cleaners() -> list:
    from ray.util.state import list_actors

    return [actor for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
            if "PlacementGroupCleaner" in actor.class_name]


def test_each_fit_ends_with_its_cleaner_gone_and_its_placement_group_removed(tmp_path):
    init_ray()
    before = {pg_id for pg_id, pg in ray.util.placement_group_table().items() if pg["state"] != "REMOVED"}
    for index in range(2):
        result = _trainer(trainer_class(), tmp_path, f"fit-{index}").fit()
        assert result.error is None
    deadline = time.monotonic() + 120  # the cleaners' monitors wake within a second; a loaded machine is slower
    while _live_cleaners() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _live_cleaners() == []
    left = {pg_id for pg_id, pg in ray.util.placement_group_table().items() if pg["state"] != "REMOVED"}
    assert left <= before
