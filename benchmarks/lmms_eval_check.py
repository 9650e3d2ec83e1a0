"""The lmms-eval bridge under the real lmms-eval, side by side with `raylayers eval` on the same questions.

Not part of CI or the tests (CI does not install lmms-eval). Run it with a Python that has lmms-eval and raylayers
installed, offline (README, "With lmms-eval"):

    python benchmarks/lmms_eval_check.py --out /tmp/lmms-check [--checkpoint DIR] [--world DIR] [--skip-llava-hf]

Without --checkpoint it builds a tiny world, a 5-step encoder and an untrained (random connector and LM) checkpoint,
as tests/conftest.py does. Then, on the world's POPE questions:
1. writes them as a Hugging Face dataset folder (parquet shards + a README.md card with `configs:`);
2. `raylayers eval --bench hf:<that folder>`, greedy and likelihood;
3. `lmms-eval --model raylayers` (the entry point the package declares) on two tasks defined by local YAML
   (`--include_path`) over the same folder: generate_until scored by lmms-eval's own POPE functions, and a yes/no
   multiple_choice task (log-likelihood) scored by `acc`;
4. `raylayers export --format hf` and `lmms-eval --model llava_hf` on the generate_until task;
5. prints accuracy per route, how many answers equal `raylayers eval`'s, and each route's answers under both
   scorings (lmms-eval's POPE reads an exact "yes"/"no"; raylayers' reads like POPE's official script, so an
   empty answer is 0 for one and "yes" for the other: compare scores within a scoring).
Everything runs with HF_HUB_OFFLINE=1 and a Hugging Face home of its own under --out. A checkpoint whose answers do
not depend on the image (an untrained one says nothing; a briefly trained one says "no" throughout) makes agreement
on the answers weak evidence: pass a trained checkpoint for a stronger check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CARD = "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: test\n    path: data/test-*\n---\n"
UTILS = '''\
"""Helpers of the check's tasks: the prompt raylayers uses, lmms-eval's own POPE scoring."""
from lmms_eval.tasks.pope.utils import (  # noqa: F401 (the official scoring, used by the YAML)
    pope_aggregate_accuracy, pope_aggregate_f1_score, pope_process_results)

from raylayers.prompts import format_question

CHOICES = ["yes", "no"]


def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc):
    return format_question(doc["question"])


def doc_to_choice(doc):
    return CHOICES


def doc_to_target_index(doc):
    return CHOICES.index(doc["answer"].strip().lower())
'''
COMMON = """\
dataset_path: {dataset}
test_split: test
doc_to_visual: !function rl_utils.doc_to_visual
doc_to_text: !function rl_utils.doc_to_text
"""
GEN_TASK = """\
task: rl_pope_gen
output_type: generate_until
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 4
  temperature: 0
  do_sample: false
process_results: !function rl_utils.pope_process_results
metric_list:
  - metric: pope_accuracy
    aggregation: !function rl_utils.pope_aggregate_accuracy
    higher_is_better: true
  - metric: pope_f1_score
    aggregation: !function rl_utils.pope_aggregate_f1_score
    higher_is_better: true
"""
LL_TASK = """\
task: rl_pope_ll
output_type: multiple_choice
doc_to_choice: !function rl_utils.doc_to_choice
doc_to_target: !function rl_utils.doc_to_target_index
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def run(command: list[str], env: dict, log: Path) -> None:
    """Run a command, its output to a log file; a failure prints the log's tail and stops the check."""
    print("$ " + " ".join(command), flush=True)
    with log.open("w") as handle:
        code = subprocess.call(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if code != 0:
        print(log.read_text()[-4000:])
        sys.exit(f"failed ({code}): {' '.join(command[:4])} ... (log: {log})")


def build_checkpoint(out: Path, env: dict) -> tuple[Path, Path]:
    """A tiny world, a 5-step encoder and an untrained checkpoint (tests/conftest.py's tiny_checkpoint)."""
    world, encoder, checkpoint = out / "world", out / "encoder", out / "checkpoint"
    if not world.is_dir():
        run([sys.executable, "-m", "raylayers.cli", "world", "--out", str(world), "--scale", "tiny"], env,
            out / "world.log")
    if not encoder.is_dir():
        run([sys.executable, "-m", "raylayers.cli", "pretrain-encoder", "--world", str(world), "--out", str(encoder),
             "--max-steps", "5"], env, out / "encoder.log")
    if not (checkpoint / "model").is_dir():
        from raylayers.config import ModelConfig
        from raylayers.model import LlavaLayers, load_tokenizer

        tokenizer = load_tokenizer(str(encoder / "lm"))
        config = ModelConfig(encoder=str(encoder), lm=str(encoder / "lm"), connector="mlp2x_gelu", layers=[-2])
        LlavaLayers.build(config, tokenizer, seed=0).save(checkpoint / "model", tokenizer, include_lm=True)
    return world, checkpoint


def write_dataset(world: Path, folder: Path) -> list[str]:
    """The world's POPE questions as a POPE-layout dataset folder; returns the question ids raylayers will give
    them (`<split>-<question_id>`), in order."""
    import datasets
    import pyarrow.parquet as pq

    datasets.disable_progress_bars()
    bench = world / "bench" / "pope"
    rows = pq.read_table(bench / "questions.parquet").to_pylist()
    table = {"question_id": [r["question_id"] for r in rows], "question": [r["question"] for r in rows],
             "answer": [r["answer"] for r in rows], "image_source": [r["image"] for r in rows],
             "image": [{"bytes": (bench / r["image"]).read_bytes(), "path": None} for r in rows],
             "category": [r["split"] for r in rows]}
    features = datasets.Features({name: datasets.Value("string") for name in table} | {"image": datasets.Image()})
    (folder / "data").mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(table, features=features).to_parquet(str(folder / "data" / "test-00000.parquet"))
    (folder / "README.md").write_text(CARD + "# POPE questions of a raylayers world\n")
    return [f"{r['split']}-{r['question_id']}" for r in rows]


def write_tasks(folder: Path, dataset: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rl_utils.py").write_text(UTILS)
    common = COMMON.format(dataset=dataset)
    (folder / "rl_pope_gen.yaml").write_text(common + GEN_TASK)
    (folder / "rl_pope_ll.yaml").write_text(common + LL_TASK)


def raylayers_eval(checkpoint: Path, dataset: Path, out: Path, mode: str, env: dict) -> dict:
    import pyarrow.parquet as pq

    run([sys.executable, "-m", "raylayers.cli", "eval", "--checkpoint", str(checkpoint), "--bench", f"hf:{dataset}",
         "--out", str(out), "--mode", mode, "--batch-size", "4"], env, out.with_suffix(".log"))
    scores = json.loads((out / "scores.json").read_text())["benchmarks"]["pope"]
    answers = pq.read_table(out / "per_question.parquet").to_pylist()
    return {"scores": scores, "answers": {row["question_id"]: row["prediction"] for row in answers}}


def lmms_eval(model: str, model_args: str, tasks: str, out: Path, include: Path, env: dict,
              extra: tuple[str, ...] = (), batch_size: int = 4) -> dict:
    """Run lmms-eval's own command line; returns {task: (its results, its samples in doc order)}."""
    lmms_cli = Path(sys.executable).with_name("lmms-eval")
    command = [str(lmms_cli) if lmms_cli.exists() else "lmms-eval", "--model", model, "--model_args", model_args,
               "--tasks", tasks, "--include_path", str(include), "--batch_size", str(batch_size), "--device", "cpu",
               "--output_path", str(out), "--log_samples", *extra]
    run(command, env, out.with_suffix(".log"))
    results = sorted(out.rglob("*_results.json"))
    if not results:  # lmms-eval 0.7.3 exits 0 when the evaluation failed: its log says why
        print(out.with_suffix(".log").read_text()[-4000:])
        sys.exit(f"lmms-eval wrote no results (log: {out.with_suffix('.log')})")
    found = {}
    for task, scores in json.loads(results[-1].read_text())["results"].items():
        [samples] = sorted(out.rglob(f"*_samples_{task}.jsonl"))[-1:]
        rows = sorted((json.loads(line) for line in samples.read_text().splitlines()), key=lambda r: r["doc_id"])
        found[task] = (scores, rows)
    return found


def generated(rows: list[dict]) -> list[str]:
    return [row["filtered_resps"] if isinstance(row["filtered_resps"], str) else row["filtered_resps"][0]
            for row in rows]


def chosen(rows: list[dict]) -> list[str]:
    """The option lmms-eval's multiple_choice scoring picked (argmin of the returned values) per doc."""
    return [["yes", "no"][min(range(2), key=lambda i: float(row["filtered_resps"][i][0]))] for row in rows]


def lmms_pope_scores(answers: list[str], targets: list[str]) -> tuple[float, float]:
    """lmms-eval's own POPE accuracy and F1 of answers (its pope utils)."""
    from lmms_eval.tasks.pope import utils

    results = [utils.pope_process_results({"question_id": str(i), "answer": target}, [answer])["pope_accuracy"]
               for i, (answer, target) in enumerate(zip(answers, targets))]
    return utils.pope_aggregate_accuracy(results), utils.pope_aggregate_f1_score(results)


def raylayers_scores(answers: list[str], ids: list[str], dataset: Path, out: Path) -> dict:
    """raylayers' POPE scores of answers made elsewhere (`raylayers eval --predictions`)."""
    from raylayers.evaluate.run import score_predictions_file

    out.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"question_id": qid, "prediction": answer}) for qid, answer in zip(ids, answers)]
    (out / "predictions-in.jsonl").write_text("\n".join(lines) + "\n")
    with open(os.devnull, "w") as quiet, _redirect(quiet):
        return score_predictions_file(out / "predictions-in.jsonl", f"hf:{dataset}", out)["benchmarks"]["pope"]


def _redirect(stream):
    from contextlib import redirect_stdout

    return redirect_stdout(stream)


def row(route: str, scorer: str, scores: tuple, same: str = "") -> str:
    accuracy, f1 = scores
    f1_text = "" if f1 is None else f"{f1:.3f}"
    return f"{route:<44} {scorer:<10} {accuracy:>8.3f} {f1_text:>6} {same:>10}"


def report(ids: list[str], targets: list[str], dataset: Path, out: Path, native: dict, bridge: dict,
           llava: dict | None) -> None:
    """The side-by-side table: every route's answers under both scorers, and agreement with raylayers eval."""
    def same(answers: list[str], mode: str) -> str:
        reference = [native[mode]["answers"][qid] for qid in ids]
        return f"{sum(a == b for a, b in zip(answers, reference))}/{len(ids)}"

    def ours(answers, name):
        scores = raylayers_scores(answers, ids, dataset, out / "rescored" / name)
        return scores["accuracy"], scores["f1"]

    greedy = [native["greedy"]["answers"][qid] for qid in ids]
    bridge_greedy, bridge_choice = generated(bridge["rl_pope_gen"][1]), chosen(bridge["rl_pope_ll"][1])
    native_scores = native["greedy"]["scores"]
    lines = [f"{'POPE, ' + str(len(ids)) + ' questions: route':<44} {'scoring':<10} {'accuracy':>8} {'F1':>6} "
             f"{'same answers':>10}",
             row("greedy: raylayers eval", "raylayers", (native_scores["accuracy"], native_scores["f1"]), "-"),
             row("greedy: raylayers eval", "lmms-eval", lmms_pope_scores(greedy, targets), "-"),
             row("greedy: lmms-eval --model raylayers", "lmms-eval",
                 (bridge["rl_pope_gen"][0]["pope_accuracy,none"], bridge["rl_pope_gen"][0]["pope_f1_score,none"]),
                 same(bridge_greedy, "greedy")),
             row("greedy: lmms-eval --model raylayers", "raylayers", ours(bridge_greedy, "bridge-greedy"))]
    if llava is not None:
        llava_greedy = generated(llava["rl_pope_gen"][1])
        lines += [row("greedy: lmms-eval --model llava_hf (export)", "lmms-eval",
                      (llava["rl_pope_gen"][0]["pope_accuracy,none"], llava["rl_pope_gen"][0]["pope_f1_score,none"]),
                      same(llava_greedy, "greedy")),
                  row("greedy: lmms-eval --model llava_hf (export)", "raylayers", ours(llava_greedy, "llava-greedy"))]
    likelihood = native["likelihood"]["scores"]
    lines += [row("likelihood: raylayers eval --mode likelihood", "raylayers",
                  (likelihood["accuracy"], likelihood["f1"]), "-"),
              row("likelihood: lmms-eval --model raylayers (mc)", "lmms-eval",
                  (bridge["rl_pope_ll"][0]["acc,none"], None), same(bridge_choice, "likelihood")),
              row("likelihood: lmms-eval --model raylayers (mc)", "raylayers", ours(bridge_choice, "bridge-ll"))]
    print("\n".join(lines))
    print("greedy answers (raylayers eval | lmms-eval raylayers" + (" | llava_hf)" if llava else ")") + ": "
          + "; ".join(" | ".join(map(repr, group)) for group in
                      zip(greedy, bridge_greedy, *([generated(llava["rl_pope_gen"][1])] if llava else [])))[:600])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working folder (world, checkpoint, runs, lmms-eval outputs)")
    parser.add_argument("--checkpoint", help="a raylayers checkpoint (default: an untrained one built here)")
    parser.add_argument("--world", help="the world whose bench/pope to ask (with --checkpoint)")
    parser.add_argument("--skip-llava-hf", action="store_true", help="leave out the exported llava_hf route")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(out / "hf-home"),
               "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    os.environ.update(offline)
    env = dict(os.environ)
    if args.checkpoint:
        if not args.world:
            parser.error("--checkpoint needs --world (whose bench/pope the questions come from)")
        world, checkpoint = Path(args.world).resolve(), Path(args.checkpoint).resolve()
    else:
        world, checkpoint = build_checkpoint(out, env)
    dataset = out / "dataset"
    ids = write_dataset(world, dataset)
    write_tasks(out / "tasks", dataset)
    native = {mode: raylayers_eval(checkpoint, dataset, out / f"raylayers-{mode}", mode, env)
              for mode in ("greedy", "likelihood")}
    bridge = lmms_eval("raylayers", f"checkpoint={checkpoint}", "rl_pope_gen,rl_pope_ll", out / "lmms-raylayers",
                       out / "tasks", env)
    llava = None
    if not args.skip_llava_hf:
        from raylayers.evaluate.predict import find_checkpoint

        export = out / "llava-hf"
        run([sys.executable, "-m", "raylayers.cli", "export", "--checkpoint", str(find_checkpoint(checkpoint)),
             "--format", "hf", "--out", str(export)], env, out / "export.log")
        # lmms-eval 0.7.3's llava_hf: the simple class (--force_simple), batch 1, and a device_map transformers 5
        # accepts (its default "" is refused)
        llava = lmms_eval("llava_hf", f"pretrained={export},device_map=cpu", "rl_pope_gen", out / "lmms-llava-hf",
                          out / "tasks", env, extra=("--force_simple",), batch_size=1)
    targets = _targets(dataset)
    report(ids, targets, dataset, out, native, bridge, llava)
    return 0


def _targets(dataset: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [answer.strip().lower() for answer in
            pq.read_table(sorted((dataset / "data").glob("*.parquet"))[0], columns=["answer"])["answer"].to_pylist()]


if __name__ == "__main__":
    sys.exit(main())
