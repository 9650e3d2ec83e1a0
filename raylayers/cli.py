"""The `raylayers` command line: one parser, each subcommand a plain function (ARCHITECTURE.md, "The command line").

`main(argv)` returns the exit code, so tests call it directly. A `UserError` becomes one line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing
from pathlib import Path

from raylayers.errors import UserError
from raylayers.paths import resolve_bench, resolve_local, resolve_model, resolve_recipe


def _say(message: str) -> None:
    print(message, flush=True)


def _progress() -> bool:
    """Progress bars unless the user turned them off (RAYLAYERS_PROGRESS=0)."""
    return os.environ.get("RAYLAYERS_PROGRESS", "1") != "0"


# ------------------------------------------------------------------------------------------------ commands
def cmd_world(args: argparse.Namespace) -> int:
    from raylayers.world import build_world

    started = time.perf_counter()
    summary = build_world(args.out, seed=args.seed, scale=args.scale, progress=_progress())
    counts = summary.get("counts", {})
    described = ", ".join(f"{key} {value}" for key, value in counts.items() if not isinstance(value, dict))
    _say(f"world ({args.scale}, seed {args.seed}) written to {Path(args.out).resolve()} "
         f"in {time.perf_counter() - started:.1f}s: {described}")
    return 0


def cmd_pretrain_encoder(args: argparse.Namespace) -> int:
    from raylayers.pretrain import pretrain_encoder

    overrides = {"max_seconds": args.max_seconds, "epochs": args.epochs, "max_steps": args.max_steps}
    report = pretrain_encoder(args.world, args.out, overrides=overrides, progress=_progress(), log=_say)
    retrieval = report["retrieval"]
    _say(f"encoder written to {Path(args.out).resolve()} ({report['steps']} steps, {report['train_seconds']}s); "
         f"held-out image-to-text top-1 {retrieval['top1']:.1%} vs chance {retrieval['chance']:.1%} "
         f"over {retrieval['num_images']} images")
    return 0


def cmd_lrs(args: argparse.Namespace) -> int:
    from raylayers.encoders import VisionTower
    from raylayers.lrs import compute_lrs, parse_groups, write_lrs

    groups = parse_groups(args.groups)  # fail on a bad flag before loading anything
    tower = VisionTower.from_pretrained(args.encoder, trust_remote_code=args.trust_remote_code)
    if groups != "auto" and groups > tower.num_layers:
        raise UserError(f"--groups {groups} is larger than the encoder's depth ({tower.num_layers} layers)")
    result = compute_lrs(tower, args.images, metric=args.metric, num_groups=groups, max_images=args.max_images,
                         batch_size=args.batch_size, progress=_progress())
    if result.skip_summary:
        print(f"warning: {result.skip_summary}", file=sys.stderr)
    paths = write_lrs(result, args.out)
    described = "; ".join(f"{g.name} {g.layers[0]}-{g.layers[-1]} (rep {g.representative})" for g in result.groups)
    _say(f"LRS of {result.num_layers} layers over {result.num_images} images ({result.metric}, "
         f"{result.num_images / max(result.seconds, 1e-9):.1f} img/s): {described}")
    _say(f"wrote {paths['json']}, {paths['parquet']}, {paths['png']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from raylayers.config import TrainConfig, load_config, resolve_config_path
    from raylayers.train import run_state, run_training
    from raylayers.train.deepspeed import effective_zero_stage

    config = load_config(TrainConfig, resolve_config_path(args.config), args.set)
    if args.resume and run_state(args.out) != "unfinished":
        raise UserError(f"--resume: '{args.out}' holds " + (
            "a finished training run; nothing to resume (its model is in model/)"
            if run_state(args.out) == "finished" else "no training run to resume"))
    _say(f"{'resuming' if args.resume else 'training'} {config.model.connector} on layers "
         f"{config.model.layers or 'default'} ({', '.join(config.stages)}; {config.resources.num_workers} worker(s), "
         f"ZeRO-{effective_zero_stage(config, config.resources.num_workers)})")
    summary = run_training(config, args.out, resume=args.resume)
    final = summary.get("final_metrics", {})
    described = ", ".join(f"{k} {final[k]:.4g}" for k in ("loss", "val_loss", "val_answer_accuracy") if k in final)
    _say(f"trained in {summary.get('seconds', 0):.0f}s: {described}")
    out = Path(args.out).resolve()
    _say(f"model written to {out / 'model'}; TensorBoard: {out / 'tensorboard'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from raylayers.export import export_hf

    folder = export_hf(args.checkpoint, args.out)
    _say(f"exported to {Path(folder).resolve()} (LlavaForConditionalGeneration + AutoProcessor, loads offline)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from raylayers.evaluate.run import evaluate_checkpoint, format_scores, score_predictions_file

    if args.predictions:
        scores = score_predictions_file(args.predictions, args.bench, args.out, limit=args.limit)
        problems = [f"{scores[k]} {label}" for k, label in (("num_unknown_ids", "unknown id(s)"),
                    ("num_duplicates", "duplicated id(s)"), ("num_missing", "missing id(s) (scored wrong)"))
                    if scores.get(k)]
        if problems:
            print(f"raylayers eval: warning: predictions have {', '.join(problems)}; see scores.json",
                  file=sys.stderr)
    else:
        scores = evaluate_checkpoint(args.checkpoint, args.bench, args.out, mode=args.mode, workers=args.workers,
                                     batch_size=args.batch_size, limit=args.limit, use_gpu=args.gpu)
    no_options = {name: s["no_options"] for name, s in scores["benchmarks"].items() if s.get("num_no_options")}
    if no_options:
        described = "; ".join(f"{name}: {scores['benchmarks'][name]['num_no_options']} (e.g. {', '.join(ids[:3])})"
                              for name, ids in no_options.items())
        print(f"raylayers eval: warning: multiple-choice question(s) without options, scored against the letters "
              f"A-Z: {described}; see scores.json", file=sys.stderr)
    _say(format_scores(scores))
    out = Path(args.out).resolve()
    _say(f"scores written to {out / 'scores.json'}; per question: {out / 'per_question.parquet'}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from raylayers.search.tuner import run_search

    summary = run_search(args.space, args.out, resume=args.resume, objective=args.objective, overrides=args.set)
    say_search_summary(summary)
    return 0


def say_search_summary(summary: dict, stream=None) -> None:
    """The closing lines of a search: counts, the first error, best and baseline, noise, caution, the report."""
    from raylayers.evaluate.significance import describe
    from raylayers.search.report import caution
    from raylayers.search.summary import first_error

    def say(line: str) -> None:
        print(line, file=stream or sys.stdout, flush=True)

    def categories(row: dict) -> str:  # " (general 0.310, ocr ...)", or nothing when the row has no categories
        parts = [f"{k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("score_") and v is not None]
        return f" ({', '.join(parts)})" if parts else ""

    say(f"search finished in {summary['seconds']:.0f}s: {summary['completed']} completed, "
        f"{summary['pruned']} stopped early, {summary['failed']} failed")
    if summary.get("first_error"):
        say(f"{summary['failed']} of {summary['trials']} trials failed; {first_error(summary)}")
    best, baseline = summary.get("best"), summary.get("baseline")
    if best:
        say(f"best: layers {list(best['layers'])} with {best['connector']}: score {best['score']:.4f}"
            f"{categories(best)}")
    if baseline:
        say(f"penultimate-layer baseline {list(baseline['layers'])}: score {baseline['score']:.4f}"
            f"{categories(baseline)}")
    if summary.get("best_vs_baseline"):
        say(f"best minus baseline: {describe(summary['best_vs_baseline'])}")
    if caution(summary):
        say(f"caution: {caution(summary)}")
    if summary.get("cost"):  # objective.cost: the best's score above is the penalised objective
        say(f"cost ({summary['cost']['measure']}): {summary['cost']['left_out']} configurations left out, "
            f"{len(summary['cost']['front'])} trials on the score-against-cost front")
    say(f"report: {summary['report']}")


def cmd_config_schema(args: argparse.Namespace) -> int:
    from raylayers.config import SCHEMAS

    text = json.dumps(SCHEMAS[args.kind].model_json_schema(), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    Path(args.out).write_text(text)
    _say(f"JSON Schema of a {args.kind} config written to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """World -> encoder -> LRS -> search -> report, offline on CPU (`raylayers.demo`)."""
    from raylayers.demo import run_demo

    return run_demo(args, main, _say)


def cmd_study(args: argparse.Namespace) -> int:
    """The paper's experiment on the world and whether its findings reproduce (`raylayers.study`)."""
    from raylayers.study import run_study

    return run_study(args, main, _say)


def cmd_pretrain_world(args: argparse.Namespace) -> int:
    from raylayers.pretrain.world import card_summary, lm_settings, pretrain_world

    flags = {"steps": args.lm_steps, "seed": args.seed, "init_from": str(args.lm_from) if args.lm_from else None}
    lm = lm_settings(args.lm_set) | {key: value for key, value in flags.items() if value is not None}
    card = pretrain_world(args.world, args.out, {"max_steps": args.encoder_steps}, lm, progress=_progress(), log=_say)
    _say(f"bundle written to {Path(args.out).resolve()}: {card_summary(card)}")
    return 0


# ------------------------------------------------------------------------------------------------ parser
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _objective(text: str) -> str:
    """`train`, or `table:FILE` with the file's path resolved like every other path (raylayers/paths.py)."""
    return f"table:{resolve_local(text[len('table:'):])}" if text.startswith("table:") else text


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`raylayers lrs: error: ...`) and exit code 2, without the usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_world(commands) -> None:
    world = commands.add_parser("world", help="write the offline procedural world (images, LLaVA json, benchmarks)")
    world.add_argument("--out", type=resolve_local, required=True, help="folder to write")
    world.add_argument("--seed", type=int, default=0, help="random seed (same seed, same world)")
    world.add_argument("--scale", choices=["tiny", "demo", "full"], default="demo", help="size preset")
    world.set_defaults(func=cmd_world)


def _add_pretrain(commands) -> None:
    pretrain = commands.add_parser("pretrain-encoder", help="train the small offline CLIP on a world")
    pretrain.add_argument("--world", type=resolve_local, required=True, help="a folder written by `raylayers world`")
    pretrain.add_argument("--out", type=resolve_local, required=True,
                          help="folder for the CLIP checkpoint, tokenizer and LM config")
    pretrain.add_argument("--max-seconds", type=float, default=None, help="training time budget (default: preset)")
    pretrain.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default: preset)")
    pretrain.add_argument("--max-steps", type=_positive_int, default=None,
                          help="stop after this many steps, schedule by steps alone: reproducible on any machine")
    pretrain.set_defaults(func=cmd_pretrain_encoder)
    world = commands.add_parser("pretrain-world", help="the world's CLIP and an LM that reads, with a card")
    world.add_argument("--world", type=resolve_local, required=True, help="a folder written by `raylayers world`")
    world.add_argument("--out", type=resolve_local, required=True, help="folder for the bundle")
    world.add_argument("--encoder-steps", type=_positive_int, default=None, help="CLIP steps (default: preset)")
    world.add_argument("--lm-steps", type=_positive_int, default=None, help="LM steps (default: preset)")
    world.add_argument("--seed", type=int, default=None, help="LM seed and text corpus seed (default 0)")
    world.add_argument("--lm-from", type=resolve_local, default=None, help="start the LM from an earlier run's lm/")
    world.add_argument("--lm-set", action="append", default=[], metavar="KEY=VALUE",
                       help="override an LM pretraining setting, e.g. --lm-set drill_fraction=0.375 (repeatable)")
    world.set_defaults(func=cmd_pretrain_world)


def _add_lrs(commands) -> None:
    from raylayers.config import LRSOptions

    defaults = LRSOptions()
    lrs = commands.add_parser("lrs", help="layer-wise representation similarity of a vision encoder")
    lrs.add_argument("--encoder", type=resolve_model, required=True,
                     help="local checkpoint folder or hub id (offline cache only)")
    lrs.add_argument("--images", type=resolve_local, required=True,
                     help="a folder of images, a LLaVA json, or a benchmark folder (questions.parquet)")
    lrs.add_argument("--out", type=resolve_local, required=True, help="folder for lrs.json, lrs.parquet, lrs.png")
    lrs.add_argument("--groups", default=defaults.groups, help="number of layer groups, or 'auto' (default)")
    lrs.add_argument("--metric", choices=_choices(LRSOptions, "metric"), default=defaults.metric,
                     help=f"similarity (default: {defaults.metric})")
    lrs.add_argument("--max-images", type=_positive_int, default=defaults.max_images,
                     help=f"use at most this many images (default {defaults.max_images})")
    lrs.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size, help="images per forward pass")
    lrs.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own code to run")
    lrs.set_defaults(func=cmd_lrs)


def _add_train(commands) -> None:
    train = commands.add_parser("train", help="two-stage LLaVA training (DeepSpeed inside Ray Train)")
    train.add_argument("--config", type=resolve_recipe, required=True,
                       help="a YAML file, or a shipped recipe name (demo, ...)")
    train.add_argument("--out", type=resolve_local, required=True,
                       help="folder for the model, TensorBoard logs and checkpoints")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set model.connector=concat (repeatable)")
    train.add_argument("--resume", action="store_true",
                       help="continue the unfinished run in --out (killed or crashed) from its last checkpoint; the "
                            "config must be the same")
    train.set_defaults(func=cmd_train)


def _add_export(commands) -> None:
    export = commands.add_parser("export", help="write a checkpoint as a transformers LLaVA folder")
    export.add_argument("--checkpoint", type=resolve_local, required=True,
                        help="a model folder written by `raylayers train`")
    export.add_argument("--format", choices=["hf"], default="hf", help="hf: LlavaForConditionalGeneration")
    export.add_argument("--out", type=resolve_local, required=True, help="folder to write")
    export.set_defaults(func=cmd_export)


def _add_eval(commands) -> None:
    from raylayers.config import MODES, EvalOptions

    defaults = EvalOptions()
    evaluate = commands.add_parser("eval", help="score a checkpoint or a predictions file on benchmarks")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=resolve_local,
                        help="a folder written by `raylayers train` (or its model/)")
    source.add_argument("--predictions", type=resolve_local, help="a JSONL of {question_id, prediction} made elsewhere")
    evaluate.add_argument("--bench", type=resolve_bench, required=True,
                          help="benchmark folder(s), a world, a real benchmark download, world task names, or "
                               "hf:DATASET[:CONFIG[:SPLIT]] from the Hugging Face cache (offline); comma-separated")
    evaluate.add_argument("--out", type=resolve_local, required=True,
                          help="folder for scores.json and per_question.parquet")
    evaluate.add_argument("--mode", choices=MODES, default=defaults.mode,
                          help="free-text greedy answers, or options scored by log-likelihood")
    evaluate.add_argument("--workers", type=_positive_int, default=1, help="Ray workers sharing the questions")
    evaluate.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size,
                          help="questions per forward pass")
    evaluate.add_argument("--limit", type=_positive_int, default=defaults.limit,
                          help="first N questions per benchmark")
    evaluate.add_argument("--gpu", action="store_true", help="one GPU per worker")
    evaluate.set_defaults(func=cmd_eval)


def _add_search(commands) -> None:
    search = commands.add_parser("search", help="search layer subsets and connectors (Ray Tune + Optuna + ASHA)")
    search.add_argument("--space", type=resolve_local, required=True, help="a search space YAML (see search_spaces/)")
    search.add_argument("--out", type=resolve_local, required=True,
                        help="folder for results.parquet, best_config.yaml, report.md")
    search.add_argument("--resume", action="store_true", help="continue the search in --out after a crash or kill")
    search.add_argument("--objective", type=_objective, default="train",
                        help="train (default: real training + evaluation) or table:FILE.parquet (replay scores)")
    search.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a space key, e.g. --set budget.trials=4 (repeatable)")
    search.set_defaults(func=cmd_search)


def _add_demo(commands) -> None:
    for name, default, func, text in (
            ("demo", "runs/demo", cmd_demo, "offline end-to-end run on CPU: world, encoder, LRS, search, report"),
            ("study", "runs/study", cmd_study, "the paper's experiment on the world: every layer alone, the concat "
                                                "of the LRS representatives, and whether its findings reproduce")):
        demo = commands.add_parser(name, help=text)
        demo.add_argument("--out", type=resolve_local, default=default, help=f"folder for everything the {name} writes")
        demo.add_argument("--scale", choices=["tiny", "demo", "full"], default="demo",
                          help="world size preset (tiny: a 2-minute check that everything is wired up)")
        demo.add_argument("--seed", type=int, default=0, help="world seed")
        if name == "demo":
            demo.add_argument("--trials", type=_positive_int, default=None, help="search trials (default: demo.yaml's)")
        demo.add_argument("--encoder-steps", type=_positive_int, default=None,
                          help="pretrain a fresh encoder for this many steps instead of using the shipped bundle "
                               "(whose LM already reads); a fresh one's LM starts from random weights")
        demo.add_argument("--encoder-seconds", type=float, default=None,
                          help="pretrain a fresh encoder with this time cap instead of using the shipped bundle")
        demo.add_argument("--resume", action="store_true",
                          help=f"continue an interrupted {name} in --out: finished steps are kept, a started search "
                               "resumes")
        demo.set_defaults(func=func)


def _add_config_schema(commands) -> None:
    from raylayers.config import SCHEMAS

    schema = commands.add_parser("config-schema", help="write the JSON Schema of a config, for editors")
    schema.add_argument("kind", choices=sorted(SCHEMAS), help="train (a --config YAML) or search (a --space YAML)")
    schema.add_argument("--out", type=resolve_local, default=None, help="file to write (default: standard output)")
    schema.set_defaults(func=cmd_config_schema)


def _choices(section, field: str) -> list:
    """The values a `Literal` field of a config section allows (the config is their one owner)."""
    return list(typing.get_args(section.model_fields[field].annotation))


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="raylayers", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_OneLineParser)
    for add in (_add_world, _add_pretrain, _add_lrs, _add_train, _add_export, _add_eval, _add_search, _add_demo,
                _add_config_schema):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from raylayers.interrupts import Interrupted, active, handling_interrupts
    from raylayers.resume_line import report_interrupt

    # Ray connects by itself on first use unless told not to; every command starts or joins Ray explicitly
    # (`init_ray`), and after an interrupt a Tune or Train loop still winding down must not start a new cluster
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    outermost = not active()  # a step of the demo leaves the interrupt to the demo, which says how to resume it
    try:
        with handling_interrupts():
            return int(args.func(args) or 0)
    except Interrupted as signal:
        if not outermost:
            raise
        return report_interrupt(args, argv, signal)
    except UserError as err:
        message = " ".join(str(err).split())  # one line, always
        print(f"raylayers {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable --out, a full disk: the user's to fix, named by path
        where = f" '{err.filename}'" if getattr(err, "filename", None) else ""
        print(f"raylayers {args.command}: error:{where} {err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # python -m raylayers.cli
    sys.exit(main())
