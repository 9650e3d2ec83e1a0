"""A run folder's config.yaml against the config a resume brings."""

from raylayers.config import TrainConfig, dump_yaml, load_config, resolve_config_path
from raylayers.train.run_folder import CONFIG_FILE, config_differences


def test_a_resume_may_differ_in_how_many_worker_failures_it_survives_but_in_nothing_it_trains(tmp_path):
    config = load_config(TrainConfig, resolve_config_path("demo"))
    (tmp_path / CONFIG_FILE).write_text(dump_yaml(config))
    assert config_differences(config, tmp_path) == []
    survives = config.model_copy(update={"checkpoint": config.checkpoint.model_copy(update={"max_failures": 0})})
    assert config_differences(survives, tmp_path) == []
    reseeded = survives.model_copy(update={"seed": config.seed + 1})
    assert config_differences(reseeded, tmp_path) == ["seed"]
