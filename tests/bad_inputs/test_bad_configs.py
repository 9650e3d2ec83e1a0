"""Bad config files and flags: train YAML, --set, a space YAML, config-schema. One line naming the file and key."""

from __future__ import annotations

import os

import pytest

BOMB = "\n".join(['x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]']
                 + [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)])


def test_train_yaml_that_is_not_utf8(refused, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"model:\n  encoder: caf\xe9\n")
    refused(["train", "--config", path, "--out", tmp_path / "out"], "t.yaml", "not UTF-8 text (byte 21)")


def test_train_yaml_alias_bomb_in_a_free_form_mapping_is_refused_not_hung(refused, train_yaml, tmp_path):
    path = train_yaml()
    text = path.read_text().replace("model:\n", "model:\n  connector_options:\n"
                                    + "".join(f"    {line}\n" for line in BOMB.splitlines()), 1)
    path.write_text(text)
    refused(["train", "--config", path, "--out", tmp_path / "out"], "train.yaml", "YAML aliases")


def test_train_yaml_recursive_alias(refused, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("model: &m\n  encoder: e\n  lm: l\n  connector_options: {self: *m}\n")
    refused(["train", "--config", path, "--out", tmp_path / "out"], "t.yaml", "YAML aliases")


def test_train_yaml_with_a_syntax_error_names_the_line(refused, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("model:\n  encoder: [unclosed\n")
    refused(["train", "--config", path, "--out", tmp_path / "out"], "t.yaml", "not valid YAML at line")


def test_train_yaml_that_is_a_list(refused, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("- model\n- data\n")
    refused(["train", "--config", path, "--out", tmp_path / "out"], "t.yaml", "must be a YAML mapping")


def test_train_yaml_with_an_unknown_key_lists_the_valid_ones(refused, train_yaml, tmp_path):
    path = train_yaml(stage1={"lr": 1})
    refused(["train", "--config", path, "--out", tmp_path / "out"], "unknown key 'stage1.lr'", "learning_rate")


def test_train_config_that_is_a_folder(refused, tmp_path):
    (tmp_path / "conf").mkdir()
    refused(["train", "--config", tmp_path / "conf", "--out", tmp_path / "out"], "conf", "not a regular file")


def test_train_config_that_is_a_fifo_is_refused_not_blocked_on(refused, tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    refused(["train", "--config", tmp_path / "pipe.yaml", "--out", tmp_path / "out"], "pipe.yaml",
            "not a regular file")


@pytest.mark.parametrize("assignment, key, says", [
    ("resources.num_workers=0", "resources.num_workers", "greater than 0"),
    ("checkpoint.every_steps=0", "checkpoint.every_steps", "greater than 0"),
    ("stage1.max_steps=0", "stage1.max_steps", "greater than 0"),
    ("stage1.learning_rate=-1", "stage1.learning_rate", "greater than 0"),
    ("stage1.epochs=-1", "stage1.epochs", "greater than 0"),
    ("stage2.learning_rate=.inf", "stage2.learning_rate", "finite"),
    ("stage1.epochs=.nan", "stage1.epochs", "finite"),
    ("data.max_length=0", "data.max_length", "greater than 0"),
    ("stage1.global_batch_size=6", "stage1.global_batch_size 6", "not a multiple"),
    ("stage1.warmup_ratio=1.5", "stage1.warmup_ratio", "less than 1"),
])
def test_train_values_that_pass_the_type_but_not_the_range(refused, train_yaml, tmp_path, assignment, key, says):
    refused(["train", "--config", train_yaml(), "--out", tmp_path / "out", "--set", assignment], key, says,
            "train.yaml", nothing_new=True)


def test_set_without_an_equals_sign(refused, train_yaml, tmp_path):
    refused(["train", "--config", train_yaml(), "--out", tmp_path / "out", "--set", "seed"],
            "--set expects key=value, got 'seed'")


def test_set_value_with_an_alias_bomb(refused, train_yaml, tmp_path):
    bomb = "[&a [1,1,1,1,1,1,1,1,1,1], " + ", ".join(
        f"&{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]" for i in range(6)) + "]"
    refused(["train", "--config", train_yaml(), "--out", tmp_path / "out", "--set",
             f"model.connector_options.x={bomb}"], "--set model.connector_options.x", "YAML aliases")


def test_config_schema_of_an_unknown_kind(refused):
    refused(["config-schema", "eval"], "invalid choice: 'eval'")


def test_config_schema_into_a_folder(refused, tmp_path):
    (tmp_path / "schemas").mkdir()
    refused(["config-schema", "train", "--out", tmp_path / "schemas"], "schemas", "Is a directory")


def test_config_schema_into_a_missing_folder(refused, tmp_path):
    refused(["config-schema", "search", "--out", tmp_path / "no" / "s.json"], "s.json", "No such file")


def test_space_yaml_that_is_not_utf8(refused, tmp_path):
    (tmp_path / "space.yaml").write_bytes(b"budget:\n  trials: 2 # \xff\n")
    refused(["search", "--space", tmp_path / "space.yaml", "--out", tmp_path / "out"], "space.yaml",
            "not UTF-8 text")


def test_space_yaml_alias_bomb(refused, tmp_path):
    (tmp_path / "space.yaml").write_text("base:\n  set:\n" + "".join(f"    {line}\n" for line in BOMB.splitlines()))
    refused(["search", "--space", tmp_path / "space.yaml", "--out", tmp_path / "out"], "space.yaml",
            "YAML aliases")


def test_space_yaml_unknown_key(refused, tmp_path):
    (tmp_path / "space.yaml").write_text("budget:\n  trails: 2\n")
    refused(["search", "--space", tmp_path / "space.yaml", "--out", tmp_path / "out"], "unknown key 'budget.trails'")
