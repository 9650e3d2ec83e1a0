"""Where does a world LM lose the questions that name an object? (issue 11's diagnostic for relation)

Scores a trained LM folder (`save_pretrained` weights and the world's tokenizer, e.g. a bundle's `lm/`) on held-out
text questions of the tasks that name their objects ("the green diamond"): position, localize, relation and the
size questions of attributes, drawn as each benchmark draws them on several seeds, with the caption where the
image would go. Accuracy (teacher-forced greedy exact match, as `raylayers pretrain-world` scores) and each group's
answer prior are split by
- the number of objects in the scene,
- where the named object stands in the caption's list (first, second, ...), and
- whether another object shares its colour or its shape.
A short-answer column asks the same multiple-choice questions without options (answered with the option's text),
which takes the letter out: what is left is finding the object and reading (or, for relation, comparing) its cell.

    .venv/bin/python benchmarks/lm_binding.py --lm benchmarks/results/world_lm_candidate

Writes the table as JSON with --out. About a minute on one thread for 3 seeds.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

TASKS = ("position", "localize", "relation", "attributes")


def _groups(scene, row) -> list[str]:
    """The breakdown groups of one question: object count, the named object's place in the caption, sharing."""
    named = [o for o in scene.objects if f"the {o.name}" in row["question"]]
    target = named[0]
    others = [o for o in scene.objects if o not in named]
    shares = [what for what, same in (("colour", any(o.colour == target.colour for o in others)),
                                      ("shape", any(o.shape == target.shape for o in others))) if same]
    return [f"{len(scene.objects)} objects", f"named object listed {scene.objects.index(target) + 1}",
            "shares " + " and ".join(shares) if shares else "shares nothing"]


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raylayers.pretrain.lm import TextCorpus, text_qa_accuracy
    from raylayers.prompts import format_question, option_letters
    from raylayers.world.build import bench_task
    from raylayers.world.questions import caption

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", type=Path, required=True, help="an LM folder with weights and the world's tokenizer")
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--corpus-seed", type=int, default=0, help="the world seed the LM was trained on")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 11, 21], help="held-out question seeds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.lm)
    model = AutoModelForCausalLM.from_pretrained(args.lm, dtype=torch.float32)
    corpus = TextCorpus(tokenizer, args.scale, args.corpus_seed, 0.0, 0.0)
    rows_by: dict[tuple, list] = defaultdict(list)
    for task in TASKS:
        for seed in args.seeds:
            rows, images = bench_task(task, seed, corpus.scale, corpus.stats)
            scenes = dict(images)
            for row in rows:
                scene = scenes[row["image"]]
                if not any(f"the {o.name}" in row["question"] for o in scene.objects):
                    continue  # an attribute question about a colour or a shape names no object so
                stated = row["options"][option_letters(len(row["options"])).index(row["answer"])]
                for form, prompt, answer in (("choice", format_question(row["question"], row["options"]),
                                              row["answer"]),
                                             ("short", format_question(row["question"]), stated)):
                    text = f"{caption(scene)}\n{prompt}"
                    item = (task, corpus.encoder.prompt(text, has_image=False),
                            corpus.encoder.answer_ids(text, answer, has_image=False))
                    for group in ["all", *_groups(scene, row)]:
                        rows_by[(task, group, form)].append(item)
    table = []
    for task, group in sorted({(t, g) for t, g, _ in rows_by}, key=lambda k: (TASKS.index(k[0]), k[1])):
        line = {"task": task, "group": group}
        for form in ("choice", "short"):
            score = text_qa_accuracy(model, rows_by[(task, group, form)], tokenizer.pad_token_id)[task]
            line |= {f"{form}_accuracy": score["accuracy"], f"{form}_prior": score["answer_prior"],
                     "questions": score["questions"]}
        table.append(line)
        print(f"{task:10s} {group:32s} n={line['questions']:4d}  choice {line['choice_accuracy']:.2f} "
              f"(prior {line['choice_prior']:.2f})  short answer {line['short_accuracy']:.2f} "
              f"(prior {line['short_prior']:.2f})", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"lm": str(args.lm), "seeds": args.seeds, "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
