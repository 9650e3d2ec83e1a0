"""Checkpoints of a training run: what a stage hands to the next, and what a restarted worker group resumes from.

A checkpoint folder (reported to Ray Train, which keeps the last `checkpoint.keep`) holds `state.json` (stage, step,
stages done), the trainable weights as safetensors (`weights/connector.safetensors`, `weights/lm.safetensors`) and
DeepSpeed's own optimizer/scheduler state (`ds/`), so a restarted worker group resumes mid-stage with the optimizer
intact and loses at most `checkpoint.every_steps` steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

STATE_FILE = "state.json"


@contextlib.contextmanager
def gathered(parameters, zero_stage: int):
    """Full (unpartitioned) parameters inside the block, on every rank, under ZeRO-3; a no-op otherwise."""
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(parameters), modifier_rank=None):
            yield
    else:
        yield


def trainable_weights(model, include_lm: bool) -> dict:
    """CPU copies of the connector's (and optionally the LM's) weights; call inside `gathered` under ZeRO-3."""
    weights = {"connector": {k: v.detach().cpu().clone() for k, v in model.connector.state_dict().items()}}
    if include_lm:
        weights["lm"] = {k: v.detach().cpu().clone() for k, v in model.lm.state_dict().items()}
    return weights


def load_trainable_weights(model, weights: dict) -> None:
    model.connector.load_state_dict(weights["connector"])
    if "lm" in weights:
        model.lm.load_state_dict(weights["lm"])


def read_checkpoint_weights(folder: Path) -> dict:
    """The trainable weights a checkpoint holds (safetensors), as `trainable_weights` returns them."""
    from safetensors.torch import load_file

    weights = {"connector": load_file(folder / "weights" / "connector.safetensors")}
    if (folder / "weights" / "lm.safetensors").is_file():
        weights["lm"] = load_file(folder / "weights" / "lm.safetensors")
    return weights


def ranks_agree(weights: dict) -> bool:
    """Whether every rank ended the stage with bit-identical trainable weights (a data-parallel sanity check)."""
    import hashlib

    import torch.distributed as dist

    digest = hashlib.blake2b(digest_size=16)
    for part in sorted(weights):
        for key in sorted(weights[part]):
            digest.update(key.encode())
            digest.update(weights[part][key].float().numpy().tobytes())
    if not (dist.is_available() and dist.is_initialized()):
        return True
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, digest.hexdigest())
    return len(set(everyone)) == 1


def save_checkpoint(engine, weights: dict, state: dict, metrics: dict, rank: int) -> None:
    """Every rank writes its DeepSpeed shard (collective); rank 0 the safetensors weights and the state; Ray
    merges the workers' folders into one checkpoint."""
    import ray.train
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as folder:
        engine.save_checkpoint(os.path.join(folder, "ds"), tag="ds")
        if rank == 0:
            (Path(folder) / "weights").mkdir()
            for part, tensors in weights.items():  # lm.safetensors: tied weights stored once, by safetensors rules
                save_file(untied(tensors), Path(folder) / "weights" / f"{part}.safetensors")
            (Path(folder) / STATE_FILE).write_text(json.dumps(state, indent=2))
        name = f"{state['stage']}-step{state['step']:06d}{'-end' if state['stage_done'] else ''}"
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder), checkpoint_dir_name=name)


def untied(tensors: dict) -> dict:
    """safetensors refuses tensors that share memory (tied embeddings): give each its own copy."""
    return {key: value.contiguous().clone() for key, value in tensors.items()}



def is_complete(folder: Path, world_size: int) -> bool:
    """Whether a checkpoint folder was written whole: its state, its weights and DeepSpeed's files for `world_size`
    ranks (ZeRO 1-3: an optimizer archive per rank; stage 0, as `state.json`'s `zero_stage` says: rank 0's model
    and optimizer archive). Cheap, nothing is loaded: safetensors refuses to open a file its header does not fully
    cover, and torch's zip archives keep their index at the end, so a file cut short by a kill does not open
    either."""
    import zipfile

    from safetensors import SafetensorError, safe_open

    try:
        state = json.loads((folder / STATE_FILE).read_text())
        int(state["global_step"])
        weights = sorted((folder / "weights").glob("*.safetensors"))
        if "connector.safetensors" not in {path.name for path in weights}:
            return False
        for path in weights:
            with safe_open(str(path), framework="pt"):
                pass
        archives = sorted((folder / "ds" / "ds").glob("*.pt"))
        expected = ("model_states", 1) if int(state.get("zero_stage", 2)) == 0 else ("optim_states", world_size)
        if not archives or sum(expected[0] in path.name for path in archives) < expected[1]:
            return False
        for path in archives:
            with zipfile.ZipFile(path):
                pass
    except (OSError, ValueError, KeyError, TypeError, SafetensorError, zipfile.BadZipFile):
        return False
    return True


def newest_complete(run_dir: Path, world_size: int) -> Path | None:
    """The newest checkpoint under a Ray Train run folder (`<storage>/<name>/`) that was written whole, by global
    step (a stage's end after its last step): what a resumed run starts from, whatever Ray's own record of
    checkpoints says (a kill can land between a checkpoint written and the record updated)."""
    best, best_key = None, None
    for folder in Path(run_dir).glob("*-step*"):
        if not folder.is_dir() or not is_complete(folder, world_size):
            continue
        state = json.loads((folder / STATE_FILE).read_text())
        key = (int(state["global_step"]), bool(state.get("stage_done")))
        if best_key is None or key > best_key:
            best, best_key = folder, key
    return best
