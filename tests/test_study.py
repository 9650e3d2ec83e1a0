"""`raylayers study`'s steps (raylayers/study.py): what each one runs, in order, fresh and resumed.

The study's commands reach `run_command` (the CLI's own `main` in use); here it records them instead, so the test
checks the study's wiring in a second. The searches it starts are tested for real in tests/search/."""

import json
from argparse import Namespace

from raylayers.study import run_study

LRS = {"num_layers": 4, "groups": [{"name": "shallow", "layers": [1, 2], "representative": 1},
                                   {"name": "deep", "layers": [3, 4], "representative": 3}]}


def _recorder(out, stop_at: str):
    """A run_command that records each argv, writes the LRS file the later steps read, and fails `stop_at`."""
    calls = []

    def run_command(argv):
        calls.append(argv)
        if argv[0] == "lrs":
            (out / "lrs").mkdir(parents=True)
            (out / "lrs" / "lrs.json").write_text(json.dumps(LRS))
        folder = argv[argv.index("--out") + 1]
        return 3 if folder.endswith(stop_at) else 0

    return calls, run_command


def _set(argv) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]


def test_a_study_runs_world_encoder_lrs_every_layer_then_the_concat_of_the_representatives(tmp_path):
    out = tmp_path / "study"
    calls, run_command = _recorder(out, stop_at="fusion")
    args = Namespace(out=str(out), scale="tiny", seed=0, encoder_steps=5, encoder_seconds=None, resume=False)
    said = []
    assert run_study(args, run_command, said.append) == 3  # the failing step's code, and nothing after it
    assert [argv[0] for argv in calls] == ["world", "pretrain-encoder", "lrs", "search", "search"]
    singles, fusion = calls[3], calls[4]
    assert singles[singles.index("--out") + 1] == str(out / "singles") and "budget.trials=4" in _set(singles)
    assert fusion[fusion.index("--out") + 1] == str(out / "fusion")
    assert {"space.num_layers=[2]", "space.layers=[1, 3]", "space.baseline=false", "budget.trials=1"} <= set(
        _set(fusion))
    assert f"base.set.model.encoder={out / 'encoder'}" in _set(fusion)
    assert len(said) == 5 and not any("findings" in line for line in said)  # five steps announced, no findings


def test_a_resumed_study_keeps_finished_steps_and_runs_the_rest(tmp_path):
    out = tmp_path / "study"
    for name in ("world/world.json", "encoder/pretrain.json", "lrs/lrs.json", "singles/search_summary.json"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(LRS))
    calls, run_command = _recorder(out, stop_at="fusion")
    args = Namespace(out=str(out), scale="tiny", seed=0, encoder_steps=5, encoder_seconds=None, resume=True)
    said = []
    assert run_study(args, run_command, said.append) == 3
    assert len(calls) == 1 and calls[0][calls[0].index("--out") + 1] == str(out / "fusion")
    assert "--resume" not in calls[0]  # the fusion search never started, so it starts fresh
    assert [line.split("): ")[1].split(":")[0] for line in said[:3]] == ["kept", "kept", "kept"]
