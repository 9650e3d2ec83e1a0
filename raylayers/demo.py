"""`raylayers demo`: world -> encoder -> LRS -> search -> report, offline on CPU, each step a `raylayers` command.

The encoder step uses the bundle shipped for the world's scale (`raylayers.pretrain.world.shipped_bundle`: the
world's CLIP and an LM that already reads, as a real user starts from a published CLIP and LLM), copied into the
run folder. With `--encoder-steps` or `--encoder-seconds`, or at a scale without a bundle, it pretrains a fresh
CLIP instead, whose LM starts from random weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from raylayers.errors import UserError

FRESH_ENCODER_STEPS, FRESH_ENCODER_SECONDS = 200, 300.0
"""A fresh encoder's budget when no flag sets it: about 200 s on 2 cores, capped so the demo stays near 15 min."""


def space_file(name: str) -> Path:
    """search_spaces/<name>.yaml of the checkout raylayers runs from (or of the current directory)."""
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (root / "search_spaces" / f"{name}.yaml").is_file():
            return root / "search_spaces" / f"{name}.yaml"
    raise UserError(f"search_spaces/{name}.yaml not found: run from a raylayers checkout")


def _bundle_for(args) -> Path | None:
    """The shipped bundle the encoder step copies, or None when the demo pretrains its own encoder."""
    from raylayers.pretrain.world import SHIPPED, shipped_bundle

    if args.encoder_steps or args.encoder_seconds or not (SHIPPED / args.scale).is_dir():
        return None
    return shipped_bundle(args.scale)


def space_overrides(out: Path) -> list[str]:
    """The `--set` values pointing a shipped space at the world, encoder, LRS and cache under `out`."""
    world, encoder = out / "world", out / "encoder"
    return [f"lrs.file={out / 'lrs' / 'lrs.json'}", f"objective.bench={world / 'bench'}",
            f"base.set.model.encoder={encoder}", f"base.set.model.lm={encoder / 'lm'}",
            f"base.set.data.stage1={world / 'stage1.json'}", f"base.set.data.stage2={world / 'stage2.json'}",
            f"base.set.data.val={world / 'stage2_val.json'}", f"base.set.cache.dir={out / 'cache'}"]


def command_step(name: str, argv: list[str], run_command) -> tuple:
    """A step that runs one `raylayers` command: (name, what is shown, action returning an exit code)."""
    return name, "raylayers " + " ".join(argv), lambda: run_command(argv)


def base_steps(args, out: Path, run_command) -> list[tuple]:
    """world -> encoder (the shipped bundle, or a fresh CLIP) -> LRS, under `out`."""
    from raylayers.pretrain.world import copy_bundle

    world, encoder, lrs_dir = out / "world", out / "encoder", out / "lrs"
    bundle = _bundle_for(args)

    def copy() -> int:
        copy_bundle(bundle, encoder)
        return 0

    steps = [
        command_step("world", ["world", "--out", str(world), "--scale", args.scale, "--seed", str(args.seed)],
                     run_command),
        ("encoder", f"the shipped {args.scale} bundle (CLIP + an LM that reads) copied to {encoder}", copy)
        if bundle else command_step("encoder", [
            "pretrain-encoder", "--world", str(world), "--out", str(encoder),
            "--max-steps", str(args.encoder_steps or FRESH_ENCODER_STEPS),
            "--max-seconds", str(args.encoder_seconds or FRESH_ENCODER_SECONDS)], run_command),
        command_step("lrs", ["lrs", "--encoder", str(encoder), "--images", str(world / "images"), "--out",
                             str(lrs_dir), "--max-images", "512"], run_command),
    ]
    if not getattr(args, "resume", False):
        return steps
    # --resume: a step whose last file is written is kept (each command writes that file last)
    done = {"world": world / "world.json", "encoder": encoder / "pretrain.json", "lrs": lrs_dir / "lrs.json"}
    return [(name, f"kept: {done[name].parent}", lambda: 0) if done[name].is_file() else (name, shown, action)
            for name, shown, action in steps]


def search_step_argv(argv: list[str], folder: Path, resume: bool) -> list[str] | None:
    """A search step's command line; with `resume`: None when that search finished, `--resume` added when it
    started (Tune can restore it), as it is when it never started."""
    from raylayers.search.tuner import can_resume

    if not resume:
        return argv
    if (folder / "search_summary.json").is_file():
        return None
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    return argv + ["--resume"] if can_resume(argv[argv.index("--space") + 1], folder, overrides) else argv


def check_search_folder(folder: Path, resume: bool, what: str) -> None:
    """Without --resume, a folder that holds a search is refused; with it, a finished one is (nothing to do)."""
    if resume:
        if (folder / "search_summary.json").is_file():
            raise UserError(f"--resume: '{folder}' holds a finished {what} search; nothing to resume")
    elif (folder / "search_summary.json").is_file():
        raise UserError(f"'{folder}' holds a finished {what} search; remove it or use another --out")
    elif (folder / "results.parquet").exists():
        raise UserError(f"'{folder}' holds an unfinished {what} search; add --resume to continue it, "
                        "or use another --out")


def run_steps(steps: list[tuple], say, label: str) -> int:
    """Each step in order, announced with its elapsed time; the first non-zero exit code stops the run."""
    started = time.perf_counter()
    for number, (name, shown, action) in enumerate(steps, 1):
        say(f"[{label} {number}/{len(steps)}] {name} ({time.perf_counter() - started:.0f}s): {shown}")
        code = action()
        if code:  # the step said what went wrong, in one line
            return code
    return 0


def run_demo(args, run_command, say) -> int:
    """The demo's steps in order; `run_command(argv)` runs one `raylayers` command and returns its exit code."""
    out = Path(args.out)
    search = out / "search"
    overrides = space_overrides(out) + ([f"budget.trials={args.trials}"] if args.trials else [])
    check_search_folder(search, args.resume, "demo")
    started = time.perf_counter()
    argv = ["search", "--space", str(space_file("demo")), "--out", str(search),
            *(a for o in overrides for a in ("--set", o))]
    steps = base_steps(args, out, run_command) + [
        command_step("search", search_step_argv(argv, search, args.resume), run_command)]
    code = run_steps(steps, say, "demo")
    if code:
        return code
    _closing(out, time.perf_counter() - started, say)
    return 0


def _closing(out: Path, seconds: float, say) -> None:
    search, lrs_dir, encoder = out / "search", out / "lrs", out / "encoder"
    summary = json.loads((search / "search_summary.json").read_text())
    if not summary.get("best"):
        raise UserError(f"the search produced no best configuration; see {search / 'report.md'}")
    lrs = json.loads((lrs_dir / "lrs.json").read_text())
    pretrain = json.loads((encoder / "pretrain.json").read_text())
    reads = encoder / "lm" / "pretrain_lm.json"
    lm = (f"; LM text-QA accuracy {json.loads(reads.read_text())['text_qa']['overall']['accuracy']:.1%}"
          if reads.is_file() else "; LM from random weights")
    say(f"demo finished in {seconds:.0f}s. Encoder retrieval top-1 "
        f"{pretrain['retrieval']['top1']:.1%} (chance {pretrain['retrieval']['chance']:.1%}){lm}; LRS groups: "
        + ", ".join(f"{g['name']} {g['layers'][0]}-{g['layers'][-1]} rep {g['representative']}"
                    for g in lrs["groups"])
        + f". Heatmap: {(lrs_dir / 'lrs.png').resolve()}; report: {(search / 'report.md').resolve()}")
