"""What a training run's `--out` folder already holds, and whether a new run may go there.

A run writes `config.yaml` before its workers start and `train_summary.json` when they finish, so a folder holds no
run, an unfinished one (config.yaml alone: killed, crashed or diverged) or a finished one. `raylayers train` refuses
an --out that holds either (a finished run's model would be passed off as new, and its files rewritten), unless
`--resume` continues an unfinished run whose config is the same. A search trial resumes whatever its own folder
holds: Tune retries and restores trials into the same folder.
"""

from __future__ import annotations

from pathlib import Path

from raylayers.config import TrainConfig, read_yaml
from raylayers.errors import UserError
from raylayers.paths import is_uri

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "train_summary.json"


def run_state(out: str | Path) -> str:
    """"finished", "unfinished" or "none": what the folder holds."""
    out = Path(out)
    if (out / SUMMARY_FILE).is_file():
        return "finished"
    return "unfinished" if (out / CONFIG_FILE).is_file() else "none"


def ray_run_folder(config: TrainConfig, out: Path) -> Path | None:
    """Ray Train's folder of this run (its checkpoints), when it is on local disk."""
    storage = config.resources.storage_path or str(out / "ray")
    return None if is_uri(storage) else Path(storage) / config.name


def check_new_run(config: TrainConfig, out: Path) -> None:
    """Refuse an --out (or a Ray Train run folder) that already holds a run: nothing it wrote is touched."""
    state = run_state(out)
    if state == "finished":
        raise UserError(f"'{out}' already holds a finished training run ({SUMMARY_FILE}, model/); give another "
                        "--out (nothing there was changed)")
    if state == "unfinished":
        raise UserError(f"'{out}' holds an unfinished training run; pass --resume to continue it with the same "
                        "config, or give another --out")
    ray_folder = ray_run_folder(config, out)
    if ray_folder is not None and ray_folder.is_dir() and any(ray_folder.iterdir()):
        raise UserError(f"'{ray_folder}' already holds Ray Train checkpoints of a run named '{config.name}', which "
                        "this run would resume; set another name or resources.storage_path, or another --out")


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        return {key: value for name, child in tree.items() for key, value in _flat(child, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): tree}


RUN_NEUTRAL_KEYS = frozenset({"checkpoint.max_failures"})
"""Keys that do not change what a run trains: a resume may differ in them (a search trial's run has
`max_failures` 0 since searches retry trials themselves; a search started before that resumes its trials)."""


def config_differences(config: TrainConfig, out: Path) -> list[str]:
    """The keys whose values differ between `config` (layers resolved) and the config.yaml of the run in `out`,
    apart from RUN_NEUTRAL_KEYS."""
    saved = _flat(read_yaml(out / CONFIG_FILE))
    new = _flat(config.model_dump(mode="json"))
    return sorted(key for key in (set(saved) | set(new)) - RUN_NEUTRAL_KEYS if saved.get(key) != new.get(key))


def check_resumable(config: TrainConfig, out: Path) -> None:
    """Refuse to resume the run in `out` with another config: name every key that differs."""
    differing = config_differences(config, out)
    if differing:
        shown = ", ".join(differing[:8]) + (f" and {len(differing) - 8} more" if len(differing) > 8 else "")
        raise UserError(f"cannot resume the run in '{out}': the config differs from its {CONFIG_FILE} in {shown}; "
                        "resume with the same config, or give another --out")
