"""`raylayers pretrain-world`: the world's CLIP and an LM that reads, as one folder with a card, the way a published
checkpoint comes; and the bundle shipped in the package, which the demo starts from.

A bundle folder is an encoder folder (`raylayers pretrain-encoder`'s layout: CLIP files at the top, `lm/` beside
them) whose `lm/` also holds trained weights, plus `card.json`: what made it (recipes, steps, seeds, seconds), what
it can do (held-out retrieval top-1 vs chance, held-out text-QA accuracy per task vs the task's answer prior) and
the SHA-256 of every file, checked whenever the shipped bundle is used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from raylayers.config import pretrain_config, pretrain_lm_config
from raylayers.errors import UserError
from raylayers.files import read_user_json

CARD_FILE = "card.json"
SHIPPED = Path(__file__).resolve().parents[1] / "bundles"
"""Where the package keeps its bundles, one folder per world scale."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CARD_FILE)


NOT_REPLAYED = ("steps", "seed", "init_from", "max_seconds")
"""LM settings a rebuild command does not pass with `--lm-set`: flags of their own, or no effect on the weights."""


def rebuild_commands(world: dict, encoder_steps: int, lm: dict) -> list[str]:
    """The commands that make a bundle like this one from nothing: the world, then one `raylayers pretrain-world`
    per LM run of its lineage (each `--lm-from` the one before), every LM setting that differs from the scale's
    preset passed with `--lm-set`. A run that did not finish its schedule, or weights of unknown making, cannot be
    replayed; the list then ends with a comment saying so."""
    scale = world.get("scale")
    preset = pretrain_lm_config(scale).model_dump()
    runs = [*lm.get("lineage", []), {"config": lm["config"], "steps": lm["steps"], "finished": lm["finished"]}]
    commands = [f"raylayers world --out WORLD --scale {scale} --seed {world.get('seed')}"]
    for number, run in enumerate(runs, 1):
        config, out = run["config"], "BUNDLE" if number == len(runs) else f"BUNDLE_{number}"
        if config is None or not run["finished"]:
            why = f"weights of unknown making ({run.get('weights')})" if config is None else (
                f"run {number} stopped at step {run['steps']} of {config['steps']} (its time cap)")
            return commands + [f"# not replayable from here: {why}"]
        changed = [f"--lm-set {key}={json.dumps(value)}" for key, value in config.items()
                   if key not in NOT_REPLAYED and value != preset.get(key)]
        commands.append(" ".join([f"raylayers pretrain-world --world WORLD --out {out} --encoder-steps {encoder_steps}",
                                  f"--lm-steps {config['steps']} --seed {config['seed']}",
                                  *([f"--lm-from BUNDLE_{number - 1}/lm"] if number > 1 else []), *changed]))
    return commands


def write_card(folder: Path, world: dict) -> dict:
    """card.json of a bundle folder from its two reports (pretrain.json, lm/pretrain_lm.json)."""
    encoder = json.loads((folder / "pretrain.json").read_text())
    lm = json.loads((folder / "lm" / "pretrain_lm.json").read_text())
    card = {
        "world": {"scale": world.get("scale"), "seed": world.get("seed"), "image_size": world.get("image_size")},
        "encoder": {"recipe": encoder["config"], "steps": encoder["steps"], "seconds": encoder["train_seconds"],
                    "retrieval": encoder["retrieval"]},
        "lm": {"recipe": lm["config"], "steps": lm["steps"], "seconds": lm["train_seconds"],
               "text_qa": lm["text_qa"]},
        "rebuild": rebuild_commands(world, encoder["steps"], lm),
        "sha256": {str(p.relative_to(folder)): _sha256(p) for p in _files(folder)},
    }
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return card


def lm_settings(assignments: list[str]) -> dict:
    """`--lm-set key=value` assignments as LM setting overrides (validated with the rest, by `pretrain_world`)."""
    from raylayers.config import PretrainLMConfig
    from raylayers.config.base import apply_override

    settings: dict = {}
    for assignment in assignments:
        if assignment.split("=", 1)[0].strip() == "init_from":
            raise UserError("--lm-set init_from=...: use --lm-from, which resolves the path")
        apply_override(PretrainLMConfig, settings, assignment)
    return settings


def pretrain_world(world: str | Path, out: str | Path, encoder_overrides: dict | None = None,
                   lm_overrides: dict | None = None, progress: bool = True, log=print) -> dict:
    """The world's CLIP (`pretrain_encoder`), then its LM taught to read (`pretrain_lm`), then the card; each part
    from the preset of the world's scale with its overrides (None values ignored). A rerun keeps an encoder already
    trained there with the same settings and resumes the LM."""
    from raylayers.pretrain.encoder import pretrain_encoder
    from raylayers.pretrain.lm import check_init_from, lineage, pretrain_lm

    world, out = Path(world), Path(out)
    meta_path = world / "world.json"
    if not meta_path.is_file():
        raise UserError(f"'{world}' is not a world folder (no world.json); make one with `raylayers world`")
    meta = read_user_json(meta_path, "world metadata")
    scale = meta.get("scale")
    lm_config = pretrain_lm_config(scale, **(lm_overrides or {}))  # a bad setting is refused before the encoder's
    if lm_config.init_from:                                          # minutes, not after them
        check_init_from(lm_config.init_from)
        lineage(lm_config.init_from)
    encoder_config = pretrain_config(scale, **(encoder_overrides or {}))
    done = out / "pretrain.json"
    previous = json.loads(done.read_text()) if done.is_file() else {}
    if previous.get("config") == encoder_config.model_dump() and previous.get("world") == str(world):
        log(f"encoder already trained in {out} with these settings; keeping it")
    else:
        pretrain_encoder(world, out, encoder_config, progress=progress, log=log)
    lm = pretrain_lm(out, scale, lm_config, progress=progress, log=log)
    if not lm["finished"]:
        raise UserError(f"the LM stopped at its time cap at step {lm['steps']} of {lm['config']['steps']}; run the "
                        f"same command again to resume it from {out / 'lm'}")
    return write_card(out, meta)


def card_summary(card: dict) -> str:
    """One line of what a bundle can do: retrieval vs chance, text-QA accuracy per task vs its answer prior."""
    qa, retrieval = card["lm"]["text_qa"], card["encoder"]["retrieval"]
    return (f"encoder retrieval top-1 {retrieval['top1']:.1%} (chance {retrieval['chance']:.1%}); LM text-QA accuracy "
            f"{qa['overall']['accuracy']:.1%} (" + ", ".join(
                f"{t} {v['accuracy']:.0%} vs prior {v['answer_prior']:.0%}" for t, v in qa.items() if t != "overall")
            + ")")


def shipped_bundle(scale: str = "demo") -> Path:
    """The package's bundle for a world scale, its files checked against its card (one line when they differ)."""
    folder = SHIPPED / scale
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise UserError(f"no shipped bundle for the '{scale}' world scale (looked in {folder})")
    expected = json.loads(card_path.read_text())["sha256"]
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file() or _sha256(path) != digest:
            raise UserError(f"the shipped bundle file '{path}' is missing or does not match its checksum in "
                            f"{card_path}; reinstall raylayers")
    return folder


def copy_bundle(source: Path, out: Path) -> Path:
    """A bundle copied to `out` (the demo's encoder folder), so a run folder holds everything it used."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)
    return out
