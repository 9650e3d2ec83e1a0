"""`raylayers study`: the paper's own experiment on the world, and whether its three findings reproduce.

world -> encoder (the shipped bundle) -> LRS -> every encoder layer alone with the paper's projector (a grid
search over `search_spaces/study.yaml`) -> the concat of the LRS representatives (one more trial, same recipe) ->
findings (`raylayers.search.findings`): per-layer category scores with 95% intervals, the Fig. 1b plot, and for
each finding a paired-bootstrap verdict. Everything lands under `--out` (default `runs/study`):
`singles/` and `fusion/` (search folders), `findings/` (findings.md, findings.json, the plot).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from raylayers.demo import base_steps, check_search_folder, run_steps, search_step_argv, space_file, space_overrides


def _search_argv(out: Path, folder: str, extra: list[str]) -> list[str]:
    overrides = space_overrides(out) + extra
    return ["search", "--space", str(space_file("study")), "--out", str(out / folder),
            *(a for o in overrides for a in ("--set", o))]


def run_study(args, run_command, say) -> int:
    """The study's steps in order; `run_command(argv)` runs one `raylayers` command and returns its exit code."""
    from raylayers.search.findings import study_findings, write_findings

    out = Path(args.out)
    if not args.resume:
        for folder in ("singles", "fusion"):
            check_search_folder(out / folder, False, "study")
    lrs_file = out / "lrs" / "lrs.json"

    def lrs() -> dict:
        return json.loads(lrs_file.read_text())

    def singles() -> int:  # every layer, known once the LRS step has read the encoder's depth
        layers = lrs()["num_layers"]
        return _run_search(_search_argv(out, "singles", [f"budget.trials={layers}"]), out / "singles")

    def fusion() -> int:
        representatives = [group["representative"] for group in lrs()["groups"]]
        return _run_search(_search_argv(out, "fusion", [
            "space.num_layers=[%d]" % len(representatives), f"space.layers={representatives}",
            "space.baseline=false", "budget.trials=1"]), out / "fusion")

    def _run_search(argv: list[str], folder: Path) -> int:
        argv = search_step_argv(argv, folder, args.resume)
        return 0 if argv is None else run_command(argv)

    def findings() -> int:
        study = study_findings(out / "singles", out / "fusion", lrs())
        path = write_findings(out / "findings", study)
        for finding in study["findings"]:
            say(f"{finding['claim']}: {finding['compared']}, {finding['category']}: {finding['difference']:+.4f} "
                f"(95% interval {finding['low']:+.4f} to {finding['high']:+.4f}): {finding['verdict']}")
        say(f"findings: {path.resolve()}")
        return 0

    started = time.perf_counter()
    steps = base_steps(args, out, run_command) + [
        ("every layer alone", f"raylayers search --space {space_file('study')} --out {out / 'singles'} ...", singles),
        ("concat of the LRS representatives", f"raylayers search ... --out {out / 'fusion'}", fusion),
        ("findings", f"{out / 'findings' / 'findings.md'}", findings),
    ]
    code = run_steps(steps, say, "study")
    if code == 0:
        say(f"study finished in {time.perf_counter() - started:.0f}s")
    return code

