"""The line an interrupted command leaves: what was kept and the command that carries on from it."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from raylayers.errors import UserError
from raylayers.interrupts import Interrupted, stop_ray


def report_interrupt(args: argparse.Namespace, argv: list[str], signal: Interrupted) -> int:
    """After Ctrl-C or SIGTERM: stop Ray (the local cluster we started goes, workers and all), say where to resume,
    and return the exit code (128 + the signal)."""
    stop_ray()
    try:
        message = interrupted_line(args, argv, signal.name)
    except (UserError, OSError):
        message = f"raylayers {args.command}: interrupted ({signal.name})"
    print(message, file=sys.stderr, flush=True)
    return signal.exit_code


def interrupted_line(args: argparse.Namespace, argv: list[str], signal_name: str) -> str:
    """The one line after Ctrl-C or SIGTERM: what was kept and the command that carries on from it."""
    again = "raylayers " + shlex.join(argv if "--resume" in argv else [*argv, "--resume"])
    line = f"raylayers {args.command}: interrupted ({signal_name})"
    if args.command == "train":
        from raylayers.config import TrainConfig, load_config, resolve_config_path
        from raylayers.train import run_state
        from raylayers.train.driver import newest_checkpoint

        if run_state(args.out) != "unfinished":
            return f"{line}; nothing to resume, run it again: raylayers {shlex.join(argv)}"
        newest = newest_checkpoint(load_config(TrainConfig, resolve_config_path(args.config), args.set), args.out)
        return f"{line}; newest checkpoint: {newest or 'none yet (the run restarts)'}; resume with: {again}"
    if args.command == "search":
        from raylayers.search.results import read_results
        from raylayers.search.summary import RESULTS_FILE

        results = Path(args.out) / RESULTS_FILE
        done = len(read_results(results)) if results.is_file() else 0
        return f"{line}; {done} trial(s) recorded in {results}; resume with: {again}"
    if args.command in ("demo", "study"):
        return f"{line}; what is done is kept in {Path(args.out).resolve()}; resume with: {again}"
    return line
