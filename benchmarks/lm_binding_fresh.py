"""Can a fresh world LM learn to bind at all? (issue 11: the smallest setting the binding defect shows in)

`benchmarks/lm_binding.py` found that the world LM reads the object its caption lists first far better than the
others. This script asks the question in isolation, in minutes: a fresh LM (by default the kept candidate's
architecture and tokenizer) is trained on one thing only, short-answer position questions after the full caption
("There are 3 objects: a small green square in the top center, ...\\nWhere is the green square?" -> " top center",
answers encoded with their leading space as the corpus encodes them; loss on the answer's tokens), and scored every
`--eval-every` steps on 600 held-out scenes, split by the number of objects and by the named object's place in the
caption. An LM that binds scores near 1.0 at every place; one that reads the first object falls with the place,
and two-object scenes sit at 0.5.

Levers: `--layers/--hidden/--heads` (the shape), `--lr`, `--dense` (every nameable object of the scene asked in one
sequence, in a random order: several answers supervised per caption), `--caption-object` (the caption's phrase
for one object, e.g. "a {size} {colour} {shape} {cell}" without "in the").

    .venv/bin/python benchmarks/lm_binding_fresh.py --steps 2000 --out benchmarks/results/lm_binding_fresh.json

About 0.3-0.6 s a step on one thread (batch 32, about 60 tokens a sequence).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

CANDIDATE = Path(__file__).resolve().parent / "results" / "world_lm_candidate"


def _example(scene, target, tokenizer, question: str) -> tuple[list[int], list[int]]:
    prompt = tokenizer(f"\n{question.format(thing=target.name)}\n", add_special_tokens=False)["input_ids"]
    answer = tokenizer(" " + scene.cell_name(target.row, target.col), add_special_tokens=False)["input_ids"]
    return prompt + answer, [0] * len(prompt) + [1] * len(answer)


def draw(rng, scale, tokenizer, dense: bool) -> tuple[list[int], list[int], int, int]:
    """(token ids, answer mask, the first asked object's place in the caption, objects in the scene)."""
    from raylayers.world.questions import POSITION_QUESTION, caption
    from raylayers.world.scene import sample_scene

    while not (unique := list((scene := sample_scene(rng, scale)).unique_objects())):
        pass
    order = rng.permutation(len(unique))[:len(unique) if dense else 1]
    ids = [tokenizer.bos_token_id] + tokenizer(caption(scene), add_special_tokens=False)["input_ids"]
    mask = [0] * len(ids)
    for k in order:
        more, more_mask = _example(scene, unique[k], tokenizer, POSITION_QUESTION)
        ids, mask = ids + more, mask + more_mask
    place = next(i for i, o in enumerate(scene.objects) if o is unique[order[0]])
    return ids + [tokenizer.eos_token_id], mask + [1], place, len(scene.objects)


def batch(examples, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(len(ids) for ids, *_ in examples)
    ids = torch.full((len(examples), length), pad)
    labels = torch.full((len(examples), length), -100)
    attention = torch.zeros((len(examples), length), dtype=torch.long)
    for row, (tokens, mask, *_) in enumerate(examples):
        tokens_t = torch.tensor(tokens)
        ids[row, :len(tokens)], attention[row, :len(tokens)] = tokens_t, 1
        labels[row, :len(tokens)] = torch.where(torch.tensor(mask) == 1, tokens_t, -100)
    return ids, attention, labels


@torch.no_grad()
def evaluate(model, scale, tokenizer, questions: int = 600) -> dict:
    """Exact match (teacher-forced greedy, every answer token) on single questions of held-out scenes."""
    model.eval()
    rng, hits, totals = np.random.default_rng(12345), {}, {}
    for _ in range(questions // 50):
        examples = [draw(rng, scale, tokenizer, dense=False) for _ in range(50)]
        ids, attention, labels = batch(examples, tokenizer.pad_token_id)
        predicted = model(input_ids=ids, attention_mask=attention).logits[:, :-1].argmax(-1)
        target = labels[:, 1:]
        right = ((predicted == target) | (target == -100)).all(-1)
        for row, (_, _, place, count) in enumerate(examples):
            for key in ("all", f"{count} objects", f"listed {place + 1}"):
                hits[key] = hits.get(key, 0) + int(right[row])
                totals[key] = totals.get(key, 0) + 1
    model.train()
    return {key: round(hits[key] / totals[key], 3) for key in sorted(totals)}


def main() -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    import raylayers.world.questions as questions
    from raylayers.world import SCALES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--like", type=Path, default=CANDIDATE, help="an LM folder: its tokenizer and config")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--dense", action="store_true", help="ask every nameable object in one sequence")
    parser.add_argument("--caption-object", default=None, help='e.g. "a {size} {colour} {shape} {cell}"')
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.caption_object:
        questions.CAPTION_OBJECT = args.caption_object  # what `caption` formats each object with
    tokenizer = AutoTokenizer.from_pretrained(args.like)
    config = LlamaConfig.from_pretrained(args.like)
    config.num_hidden_layers = args.layers or config.num_hidden_layers
    config.hidden_size = args.hidden or config.hidden_size
    config.num_attention_heads = config.num_key_value_heads = args.heads or config.num_attention_heads
    config.head_dim = config.hidden_size // config.num_attention_heads
    config.intermediate_size = int(config.hidden_size * 2.75)
    torch.manual_seed(args.seed)
    model, scale = LlamaForCausalLM(config), SCALES["demo"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng, curve, started = np.random.default_rng(args.seed), [], time.perf_counter()
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:  # 100 warm-up steps, then cosine to zero
            group["lr"] = args.lr * min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        ids, attention, labels = batch([draw(rng, scale, tokenizer, args.dense) for _ in range(32)],
                                       tokenizer.pad_token_id)
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if step % args.eval_every == 0 or step == args.steps:
            row = {"step": step, "loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - started),
                   **evaluate(model, scale, tokenizer)}
            curve.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                                "curve": curve}, indent=1) + "\n")


if __name__ == "__main__":
    main()
