"""Can the world's LM learn to answer one task from the caption, and how fast? (issue 11's diagnostic)

Trains a fresh LM (the config and tokenizer of an encoder folder's `lm/`, width optionally changed) on text
records of ONE world task: the scene's caption where the image would go, then the question in its benchmark format,
the answer supervised. Held-out questions are scored every 100 steps, teacher-forced (greedy exact match), next to
the task's answer prior. Modes:
    mc      the benchmark format (multiple choice answered with the option's letter)
    direct  multiple-choice questions asked short-answer, answered with the option's text (one hop fewer)
    curr    a curriculum: direct for the first 40% of the steps, then half direct, half mc; scored on mc
    explicit  mc with the right option's text stated before the question ("It is red."): the letter hop alone
--loss-on text trains on every token of the record (plain language modelling) instead of the answers alone;
--no-caption leaves the caption out (with --mode explicit: nothing to read but the options); --drill-steps N trains
the first N steps on such option drills (`raylayers pretrain-world`'s curriculum), then on --mode.

    .venv/bin/python benchmarks/lm_reading.py --lm runs/encoder/lm --task ocr --steps 400
    .venv/bin/python benchmarks/lm_reading.py --lm runs/encoder/lm --task attributes --mode direct --steps 500
    .venv/bin/python benchmarks/lm_reading.py --lm runs/encoder/lm --task attributes --mode explicit --no-caption \
        --loss-on text --lr 5e-4 --steps 1500
    .venv/bin/python benchmarks/lm_reading.py --lm runs/encoder/lm --task attributes --loss-on text --lr 5e-4 \
        --drill-steps 1200 --steps 1700

Prints one line per evaluation (step, loss, accuracy, prior, seconds) and writes them as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from raylayers.data import ConversationEncoder
    from raylayers.pretrain.lm import lm_loss, pad_rows, text_qa_accuracy
    from raylayers.prompts import IMAGE_TOKEN, format_question, option_letters
    from raylayers.world import QUESTION_MAKERS, SCALES, TASKS, caption, object_stats, sample_scene

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", required=True, help="an encoder folder's lm/ (config + tokenizer)")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--mode", choices=["mc", "direct", "curr", "explicit"], default="mc")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=None, help="hidden size (default: the config's)")
    parser.add_argument("--depth", type=int, default=None, help="number of layers (default: the config's)")
    parser.add_argument("--loss-on", choices=["answers", "text", "both"], default="answers")
    parser.add_argument("--no-caption", action="store_true", help="leave the scene's caption out of the prompt")
    parser.add_argument("--drill-steps", type=int, default=0,
                        help="train the first N steps on option drills (explicit, no caption), then on --mode")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the curve here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.lm)
    config = AutoConfig.from_pretrained(args.lm)
    if args.width:
        config.hidden_size, config.intermediate_size = args.width, int(2.75 * args.width)
    if args.depth:
        config.num_hidden_layers = args.depth
    model = AutoModelForCausalLM.from_config(config)
    encoder = ConversationEncoder(tokenizer, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), 0, 1 << 20, "chat")
    scale, rng = SCALES["demo"], np.random.default_rng(0)
    stats = object_stats([sample_scene(rng, scale) for _ in range(500)])
    state = {"step": 0}

    def question(generator, held_out: bool) -> tuple[str, str]:
        while True:
            scene = sample_scene(generator, scale)
            q = QUESTION_MAKERS[args.task](scene, generator, stats)
            if q is None:
                continue
            described = "" if args.no_caption else caption(scene) + "\n"
            direct = args.mode == "direct" or (args.mode == "curr" and not held_out and (
                state["step"] < 0.4 * args.steps or generator.random() < 0.5))
            if direct and q.options:
                answer = q.options[option_letters(len(q.options)).index(q.answer)]
                return f"{described}{format_question(q.question)}", answer
            drill = not held_out and state["step"] <= args.drill_steps
            if (args.mode == "explicit" or drill) and q.options:
                said = q.options[option_letters(len(q.options)).index(q.answer)]
                described = "" if drill else described
                return f"{described}It is {said}.\n{format_question(q.question, q.options)}", q.answer
            return f"{described}{format_question(q.question, q.options)}", q.answer

    held = []
    validation = np.random.default_rng(99)
    for _ in range(200):
        prompt, answer = question(validation, held_out=True)
        held.append((args.task, encoder.prompt(prompt, has_image=False),
                     encoder.answer_ids(prompt, answer, has_image=False)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    curve, started = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        state["step"] = step
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50)
        rows = []
        for _ in range(args.batch):
            prompt, answer = question(rng, held_out=False)
            ids, labels = encoder.encode([{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}])
            rows.append((ids, labels))
        batch = pad_rows(rows, tokenizer.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = lm_loss(logits, batch, args.loss_on)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0 or step == args.steps:
            score = text_qa_accuracy(model, held, tokenizer.pad_token_id)[args.task]
            curve.append({"step": step, "loss": round(loss.item(), 4), **score,
                          "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps(curve[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "curve": curve}, indent=2) + "\n")


if __name__ == "__main__":
    main()
