"""The bad-input corpus (issue 16): every command, fed what a user gets wrong, answers with one line on stderr that
names the file, record or key, exits 2 (or 0 with one warning line where bad images are skipped and counted), and
leaves what was on disk as it was. Most cases call `raylayers.cli.main` in-process and must fail before Ray starts:
the autouse fixture makes starting Ray an error outside tests marked slow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bad_inputs.bad_inputs_testing import snapshot


@pytest.fixture(autouse=True)
def no_ray_unless_slow(request, monkeypatch):
    """A fast case that reaches Ray has failed too late: make starting Ray an error."""
    if request.node.get_closest_marker("slow"):
        return

    def refuse(*args, **kwargs):
        raise AssertionError("a fast bad-input case started Ray: the input was not checked before launching")

    monkeypatch.setattr("raylayers.ray_session.init_ray", refuse)
    monkeypatch.setattr("ray.init", refuse)


def _run(argv: list) -> int:
    from raylayers.cli import main

    try:
        return main([str(part) for part in argv])
    except SystemExit as stop:  # argparse's own errors (a bad flag): one line and 2 as well
        return stop.code


@pytest.fixture
def refused(capfd, tmp_path):
    """`refused(argv, *needles, code=2, kept=tmp_path, nothing_new=False)`: run the command; assert its exit code,
    exactly one line on stderr holding every needle, and that every file under `kept` is still there unchanged (and,
    with `nothing_new`, that nothing was added). Returns the line."""

    def check(argv: list, *needles: str, code: int = 2, kept: Path | None = None, nothing_new: bool = False) -> str:
        kept = Path(kept or tmp_path)
        before = snapshot(kept)
        capfd.readouterr()
        rc = _run(argv)
        err = capfd.readouterr().err
        lines = err.strip().splitlines()
        assert rc == code, f"exit code {rc}, stderr:\n{err[-3000:]}"
        assert len(lines) == 1, f"expected one line on stderr, got:\n{err[-3000:]}"
        for needle in needles:
            assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
        after = snapshot(kept)
        changed = [name for name, data in before.items() if after.get(name) != data]
        assert not changed, f"files changed or lost: {changed}"
        if nothing_new:
            assert set(after) == set(before), f"files added: {sorted(set(after) - set(before))}"
        return lines[0]

    return check


@pytest.fixture
def world(tiny_stack, tmp_path) -> Path:
    """A copy of the tiny world, to break."""
    return Path(shutil.copytree(tiny_stack / "world", tmp_path / "world"))


@pytest.fixture
def train_yaml(tiny_stack, tmp_path):
    """`train_yaml(**sections)`: a train YAML on the tiny stack with some sections replaced or extended."""
    import yaml

    def write(name: str = "train.yaml", **sections) -> Path:
        world, encoder = tiny_stack / "world", tiny_stack / "encoder"
        config = {
            "model": {"encoder": str(encoder), "lm": str(encoder / "lm"), "layers": [-2]},
            "data": {"stage1": str(world / "stage1.json"), "stage2": str(world / "stage2.json"),
                     "val": str(world / "stage2_val.json"), "max_length": 160},
            "stage1": {"max_steps": 2, "global_batch_size": 8, "micro_batch_size": 4},
            "stage2": {"max_steps": 2, "global_batch_size": 8, "micro_batch_size": 4, "train_lm": True,
                       "template": "chat"},
        }
        for key, value in sections.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write
