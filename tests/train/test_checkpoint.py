"""Which checkpoint a resumed run starts from: the newest one on disk that was written whole."""

import json

import torch
from safetensors.torch import save_file

from raylayers.train.checkpoint import is_complete, newest_complete
from raylayers.train.worker import resume_folder


def fake_checkpoint(run, name, global_step, ranks=1, stage_done=False):
    """A checkpoint folder laid out as `save_checkpoint` and DeepSpeed write it (small tensors)."""
    folder = run / name
    (folder / "weights").mkdir(parents=True)
    (folder / "ds" / "ds").mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"stage": "stage1", "step": global_step, "global_step": global_step,
                                                   "stage_done": stage_done, "stages_done": []}))
    save_file({"proj.weight": torch.randn(16, 16)}, folder / "weights" / "connector.safetensors")
    torch.save({"module": {"w": torch.randn(8)}}, folder / "ds" / "ds" / "mp_rank_00_model_states.pt")
    for rank in range(ranks):
        torch.save({"optimizer": {"m": torch.randn(8)}},
                   folder / "ds" / "ds" / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
    return folder


def cut_short(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_the_newest_whole_checkpoint_is_chosen(tmp_path):
    fake_checkpoint(tmp_path, "stage1-step000005", 5)
    ten = fake_checkpoint(tmp_path, "stage1-step000010", 10)
    assert newest_complete(tmp_path, world_size=1) == ten
    end = fake_checkpoint(tmp_path, "stage1-step000010-end", 10, stage_done=True)  # a stage's end wins a tie
    assert newest_complete(tmp_path, world_size=1) == end


def test_checkpoints_cut_short_by_a_kill_are_passed_over(tmp_path):
    good = fake_checkpoint(tmp_path, "stage1-step000005", 5)
    weights = fake_checkpoint(tmp_path, "stage1-step000010", 10)
    cut_short(weights / "weights" / "connector.safetensors")
    optimizer = fake_checkpoint(tmp_path, "stage1-step000015", 15)
    cut_short(optimizer / "ds" / "ds" / "zero_pp_rank_0_mp_rank_00_optim_states.pt", keep=0.9)
    state = fake_checkpoint(tmp_path, "stage1-step000020", 20)
    (state / "state.json").write_text('{"stage": "stage1", "glo')
    missing = fake_checkpoint(tmp_path, "stage1-step000025", 25)
    (missing / "weights" / "connector.safetensors").unlink()
    assert [is_complete(f, 1) for f in (good, weights, optimizer, state, missing)] == [True] + [False] * 4
    assert newest_complete(tmp_path, world_size=1) == good
    assert newest_complete(tmp_path / "nothing-here", world_size=1) is None


def test_every_rank_must_have_written_its_optimizer_state(tmp_path):
    one_rank = fake_checkpoint(tmp_path, "stage1-step000010", 10, ranks=1)
    assert is_complete(one_rank, world_size=1) and not is_complete(one_rank, world_size=2)
    assert newest_complete(tmp_path, world_size=2) is None


def test_a_stage_0_checkpoint_is_whole_with_rank_0_s_archive_alone(tmp_path):
    """ZeRO-0 (what a one-rank ZeRO-1/2 run uses) writes the model and optimizer into one archive, no per-rank
    optimizer files; its state says so. Cut short, it is passed over like any other."""
    stage0 = fake_checkpoint(tmp_path, "stage1-step000010", 10, ranks=0)
    state = json.loads((stage0 / "state.json").read_text())
    assert not is_complete(stage0, 1)  # without the state's word, per-rank optimizer files are expected
    (stage0 / "state.json").write_text(json.dumps({**state, "zero_stage": 0}))
    assert is_complete(stage0, 1)
    cut_short(stage0 / "ds" / "ds" / "mp_rank_00_model_states.pt", keep=0.9)
    assert not is_complete(stage0, 1)


def test_resume_takes_whichever_is_further_along_ray_s_record_or_the_disk(tmp_path):
    from ray.train import Checkpoint  # what ray.train.get_checkpoint returns to a restarted worker group

    older = fake_checkpoint(tmp_path, "stage1-step000005", 5)
    newer = fake_checkpoint(tmp_path, "stage1-step000010", 10)

    def step(folder):
        return json.loads((folder / "state.json").read_text())["global_step"]

    reported_older, reported_newer = Checkpoint.from_directory(str(older)), Checkpoint.from_directory(str(newer))
    assert resume_folder(reported_older, str(newer)) == newer  # Ray's record lagged behind the disk
    assert step(resume_folder(reported_newer, str(older))) == 10  # a worker restart after the resume
    assert resume_folder(None, str(older)) == older
    assert step(resume_folder(reported_older, None)) == 5
    assert resume_folder(None, None) is None
