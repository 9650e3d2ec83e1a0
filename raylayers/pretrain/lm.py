"""Teaching the world's LM to read: text-only pretraining, as a real LLaVA starts from an LLM that already reads.

The paper's setting (and LLaVA's) is a pretrained LLM: stage 1 trains only the connector, so the image tokens must
land where the LM already knows how to use them. A randomly initialised LM cannot answer from anything, image or
text, within a trial's budget. Here the LM of an encoder folder (`lm/`: config and tokenizer, written by
`raylayers pretrain-encoder`) is trained on the world's text (`raylayers.world.text`): the scene's caption where the
image would go, then the world's questions in their benchmark formats (answers supervised), plus copy records (the
caption as context, then the caption again). It is scored on held-out questions drawn as each benchmark draws
them, teacher-forced (an answer counts when each of its tokens is the argmax given the right prefix: exactly what
greedy decoding produces), next to each task's answer prior (the share of its most frequent answer).

The loop is a plain PyTorch loop in one process, like `pretrain.py`'s: one small model on one machine, nothing for
Ray or DeepSpeed to add. The weights are saved with `save_pretrained` into `lm/`, so training loads them with
`from_pretrained` as it would a published LLM; `lm/pretrain_lm.json` records the run.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path

import torch

from raylayers.config import PretrainLMConfig, pretrain_lm_config
from raylayers.data import IGNORE_INDEX, ConversationEncoder, Sample, collate
from raylayers.errors import UserError
from raylayers.files import read_user_json
from raylayers.prompts import IMAGE_TOKEN
from raylayers.train.schedule import cosine_decay, linear_warmup

REPORT_FILE = "pretrain_lm.json"


GOLDEN_RATIO = 0.6180339887498949
"""Index x this, mod 1, spreads any share of the drills evenly and deterministically over the indices."""


class TextCorpus:
    """The world's text records for one scale and seed, encoded as the training stages encode records."""

    def __init__(self, tokenizer, scale_name: str, seed: int, copy_fraction: float, direct_fraction: float,
                 scene_drill_share: float = 0.0):
        from raylayers.world import SCALES, object_stats, sample_scene
        from raylayers.world.build import SCENE_PURPOSE, stream_rng

        self.scale = SCALES[scale_name]
        self.seed, self.copy_fraction, self.direct_fraction = seed, copy_fraction, direct_fraction
        self.scene_drill_share = scene_drill_share
        # POPE's harder negatives follow the object statistics of a world's training images, as the world's do
        self.stats = object_stats([sample_scene(stream_rng(seed, "train", index, SCENE_PURPOSE), self.scale)
                                   for index in range(self.scale.num_train_images)])
        self.tokenizer = tokenizer
        self.length_group: tuple | None = None  # ((group, config), rows) of the last group `_batch_rows` drew
        self.encoder = ConversationEncoder(tokenizer, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), 0,
                                           max_length=1 << 20, template="chat")

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def sample(self, index: int, drill: bool = False) -> tuple[list[int], list[int]]:
        """(input ids, labels) of text record `index`, or of drill `index` (a scene drill for `scene_drill_share` of
        the indices, else an option drill), with the answers supervised (what else the loss covers is `lm_loss`'s
        choice)."""
        from raylayers.world.text import drill_record, scene_drill_record, text_record

        if drill and (index * GOLDEN_RATIO) % 1.0 < self.scene_drill_share:  # an even spread over the indices
            record = scene_drill_record(self.seed, self.scale, index, self.stats)
        elif drill:
            record = drill_record(self.seed, self.scale, index, self.stats)
        else:
            record = text_record(self.seed, self.scale, index, self.stats, self.copy_fraction, self.direct_fraction)
        if record["kind"] == "copy":  # the stage-1 layout with the caption where the image tokens go
            context = self.ids(record["context"])
            answer = self.ids(record["conversations"][1]["value"] + self.tokenizer.eos_token)
            ids, labels = [self.tokenizer.bos_token_id] + context + answer, [IGNORE_INDEX] * (1 + len(context)) + answer
        else:
            ids, labels = self.encoder.encode(record["conversations"])
        return ids, labels

    def heldout(self) -> list[tuple[str, list[int], list[int]]]:
        """(task, prompt ids, answer ids with the end of turn) of the held-out questions (corpus seed + 1)."""
        from raylayers.world.text import heldout_questions

        return [(q["task"], self.encoder.prompt(q["prompt"], has_image=False),
                 self.encoder.answer_ids(q["prompt"], q["answer"], has_image=False))
                for q in heldout_questions(self.seed + 1, self.scale, self.stats)]

    def heldout_drills(self, count: int = 200) -> list[tuple[str, list[int], list[int]]]:
        """`heldout`'s rows for `count` option drills of seed + 1: whether the letter hop itself is learned."""
        from raylayers.world.text import drill_record

        rows = []
        for index in range(count):
            prompt, answer = (turn["value"] for turn in drill_record(self.seed + 1, self.scale, index,
                                                                      self.stats)["conversations"])
            rows.append(("drill", self.encoder.prompt(prompt, has_image=False),
                         self.encoder.answer_ids(prompt, answer, has_image=False)))
        return rows


def pad_rows(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict:
    """Right-padded input ids, attention mask and labels of (input ids, labels) rows: `data.collate`'s batches."""
    return collate([Sample("", ids, labels, None) for ids, labels in rows], pad_id)


@torch.no_grad()
def text_qa_accuracy(model, heldout: list, pad_id: int, batch_size: int = 64) -> dict:
    """Per task: accuracy on the held-out questions (teacher-forced greedy exact match), their number, and the
    answer prior (the share of the task's most frequent answer); "overall" pools every question."""
    model.eval()
    hits: dict[str, list[bool]] = {}
    for start in range(0, len(heldout), batch_size):
        chunk = heldout[start:start + batch_size]
        rows = [(prompt + answer, [IGNORE_INDEX] * len(prompt) + answer) for _, prompt, answer in chunk]
        batch = pad_rows(rows, pad_id)
        predicted = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
        for row, (task, _, _) in enumerate(chunk):
            supervised = batch["labels"][row, 1:] != IGNORE_INDEX
            right = predicted[row, :-1][supervised] == batch["labels"][row, 1:][supervised]
            hits.setdefault(task, []).append(bool(right.all()))
    model.train()
    answers: dict[str, Counter] = {}
    for task, _, answer in heldout:
        answers.setdefault(task, Counter())[tuple(answer)] += 1
    report = {task: {"accuracy": round(sum(flags) / len(flags), 4), "questions": len(flags),
                     "answer_prior": round(max(answers[task].values()) / len(flags), 4)}
              for task, flags in hits.items()}
    every = [flag for flags in hits.values() for flag in flags]
    report["overall"] = {"accuracy": round(sum(every) / len(every), 4), "questions": len(every)}
    return report


def _drawn_rows(corpus: TextCorpus, config: PretrainLMConfig, step: int) -> list[tuple[list[int], list[int]]]:
    """The records drawn for step `step`: drills only for the first `drill_steps`, then `drill_fraction` of them."""
    drills = config.batch_size if step < config.drill_steps else round(config.drill_fraction * config.batch_size)
    return [corpus.sample(step * config.batch_size + row, row < drills) for row in range(config.batch_size)]


def _batch_rows(corpus: TextCorpus, config: PretrainLMConfig, step: int) -> list[tuple[list[int], list[int]]]:
    """Step `step`'s batch: the records of its group of `length_group_steps` steps, longest first, cut into
    batches (a group of steps trains on exactly the records its steps drew, with less padding)."""
    group, offset = divmod(step, config.length_group_steps)
    if corpus.length_group is None or corpus.length_group[0] != (group, config):
        first = group * config.length_group_steps
        drawn = [row for s in range(first, first + config.length_group_steps)
                 for row in _drawn_rows(corpus, config, s)]
        corpus.length_group = ((group, config), sorted(drawn, key=lambda row: len(row[0]), reverse=True))
    return corpus.length_group[1][offset * config.batch_size:(offset + 1) * config.batch_size]


def _scores(model, heldout: list, drills: list, pad_id: int) -> dict:
    """Held-out text-QA accuracy (`text_qa_accuracy`) plus, apart from "overall", the held-out drills' under
    "drill" when the run trains on drills."""
    scores = text_qa_accuracy(model, heldout, pad_id)
    return scores | ({"drill": text_qa_accuracy(model, drills, pad_id)["drill"]} if drills else {})


def _learning_rate(config: PretrainLMConfig, step: int) -> float:
    """Linear warm-up, then a cosine down to a tenth of the peak over the configured steps."""
    return config.learning_rate * linear_warmup(step, config.warmup_steps) * (
        0.1 + 0.9 * cosine_decay(step / config.steps))


def check_init_from(init_from: str) -> Path:
    """The folder an LM run starts from, if it holds weights (one line naming it if not)."""
    source = Path(init_from)
    if not (source / "model.safetensors").is_file():
        raise UserError(f"--lm-from '{source}' holds no LM weights (model.safetensors, written by a finished "
                        "`raylayers pretrain-world`)")
    return source


def _load(lm_dir: Path, seed: int, init_from: str | None = None):
    """The tokenizer of `lm_dir` and its LM: random weights (seeded), or those saved in `init_from`, which must
    share the tokenizer and the architecture."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not (lm_dir / "config.json").is_file():
        raise UserError(f"'{lm_dir}' holds no LM config; make the encoder folder with `raylayers pretrain-encoder`")
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(lm_dir)
    if init_from is None:
        return tokenizer, AutoModelForCausalLM.from_config(config)
    source = check_init_from(init_from)
    if not (source / "tokenizer.json").is_file() or (
            (source / "tokenizer.json").read_bytes() != (lm_dir / "tokenizer.json").read_bytes()):
        raise UserError(f"--lm-from '{source}' has another tokenizer than '{lm_dir}': its weights would read other "
                        "token ids; start from an LM trained on the same world")
    mine, theirs = config.to_dict(), AutoConfig.from_pretrained(source).to_dict()
    ignored = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures"}  # saving metadata
    differing = sorted(key for key in (mine.keys() | theirs.keys()) - ignored if mine.get(key) != theirs.get(key))
    if differing:
        raise UserError(f"--lm-from '{source}' is another architecture than '{lm_dir}' ({', '.join(differing)})")
    return tokenizer, AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)


def lineage(init_from: str | None) -> list[dict]:
    """The runs an LM starting from `init_from` descends from, oldest first: each `{"config", "steps", "finished",
    "overall"}` from the source's report (and the source's own lineage), or one `{"weights": path, "config": None}`
    when the source has no report (weights of unknown making)."""
    if init_from is None:
        return []
    path = Path(init_from) / REPORT_FILE
    if not path.is_file():
        return [{"weights": str(init_from), "config": None}]
    report = read_user_json(path, "LM pretraining report")
    try:
        runs = report.get("runs", [report])  # a report, or a record of several runs (`{"about", "runs"}`)
        earlier = report.get("lineage", []) if "runs" not in report else []
        overall = [run["text_qa"]["overall"] for run in runs]  # {"accuracy": ...}, or the bare figure
        return earlier + [{"config": run["config"], "steps": run["steps"], "finished": run.get("finished", True),
                           "overall": score["accuracy"] if isinstance(score, dict) else score}
                          for run, score in zip(runs, overall)]
    except (KeyError, TypeError, AttributeError):
        raise UserError(f"'{path}' is not an LM pretraining report raylayers can read (each run needs config, steps "
                        "and text_qa.overall); remove it to start from the weights alone") from None


STATE_FILE = "pretrain_lm_state.pt"
"""The run so far (weights, optimiser, step, curves), saved at every evaluation; removed when the run finishes."""


def _resume(lm_dir: Path, config: PretrainLMConfig, model, optimizer) -> dict:
    """The saved run of `config` in `lm_dir` loaded into model and optimiser, or a fresh run's record."""
    path = lm_dir / STATE_FILE
    if not path.is_file():
        return {"step": 0, "seconds": 0.0, "losses": [], "curve": []}
    state = torch.load(path, weights_only=False)
    wanted = config.model_dump()
    differing = sorted(k for k in wanted if k != "max_seconds" and state["config"].get(k) != wanted[k])
    if differing:  # the time cap is per call; anything else changes the run
        raise UserError(f"'{path}' holds an unfinished LM pretraining run with other settings "
                        f"({', '.join(differing)}); rerun with the same settings to resume it, or remove it")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return state["run"]


def _save_state(lm_dir: Path, config: PretrainLMConfig, model, optimizer, run: dict) -> None:
    partial = lm_dir / (STATE_FILE + ".partial")
    torch.save({"config": config.model_dump(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "run": run}, partial)
    partial.replace(lm_dir / STATE_FILE)


def _next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean loss of predicting `targets[:, t + 1]` at position t, over the targets that are not ignored."""
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets[:, 1:].flatten(),
                                             ignore_index=IGNORE_INDEX)


def _text_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss over every real (unpadded) token after the first."""
    return _next_token_loss(logits, input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX))


def lm_loss(logits: torch.Tensor, batch: dict, loss_on: str) -> torch.Tensor:
    """The loss `loss_on` names on a padded batch: the answers' mean ("answers"), every real token's ("text"), or
    their sum ("both": the few answer tokens keep their weight next to the caption's many)."""
    answers = _next_token_loss(logits, batch["labels"]) if loss_on in ("answers", "both") else 0.0
    text = _text_loss(logits, batch["input_ids"], batch["attention_mask"]) if loss_on in ("text", "both") else 0.0
    return answers + text


def _train_step(model, optimizer, batch: dict, learning_rate: float, step: int, loss_on: str = "answers") -> float:
    """One optimiser step on `lm_loss(..., loss_on)`."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = lm_loss(logits, batch, loss_on)
    if not math.isfinite(loss.item()):
        raise UserError(f"LM pretraining diverged at step {step + 1} (loss {loss.item()}); lower the learning rate")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return round(loss.item(), 4)


def pretrain_lm(encoder: str | Path, scale: str, config: PretrainLMConfig | None = None, progress: bool = True,
                log=print) -> dict:
    """Train `<encoder>/lm` on the world's text at `scale`; save its weights there; return the report. The run
    is saved at every evaluation and a rerun with the same settings resumes it (`max_seconds` caps each call)."""
    from tqdm import tqdm

    from raylayers.encoders import quiet_transformers

    quiet_transformers()
    lm_dir = Path(encoder) / "lm"
    config = config or pretrain_lm_config(scale)
    tokenizer, model = _load(lm_dir, config.seed, config.init_from)
    ancestors = lineage(config.init_from)  # read now: `init_from` may be this very folder, rewritten at the end
    corpus = TextCorpus(tokenizer, scale, config.seed, config.copy_fraction, config.direct_fraction,
                        config.scene_drill_share)
    heldout = corpus.heldout()
    drills = corpus.heldout_drills() if config.drill_steps or config.drill_fraction else []
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                  betas=(0.9, 0.98))
    run = _resume(lm_dir, config, model, optimizer)
    log(f"pretraining the world LM ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters) on "
        f"{config.steps} x {config.batch_size} text records (at most {config.max_seconds:.0f}s)"
        + (f", resuming at step {run['step']}" if run["step"] else ""))
    started, out_of_time, scores = time.perf_counter(), False, None
    model.train()
    with tqdm(total=config.steps, initial=run["step"], desc="pretrain-lm", unit="step", disable=not progress) as bar:
        while run["step"] < config.steps and not out_of_time:
            step = run["step"]
            batch = pad_rows(_batch_rows(corpus, config, step), tokenizer.pad_token_id)
            run["losses"].append(_train_step(model, optimizer, batch, _learning_rate(config, step), step,
                                             config.loss_on))
            run["step"] = step = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{run['losses'][-1]:.3f}")
            out_of_time = time.perf_counter() - started > config.max_seconds
            if step % config.eval_every == 0 or step == config.steps or out_of_time:
                scores = _scores(model, heldout, drills, tokenizer.pad_token_id)
                run["curve"].append({"step": step, "seconds": round(run["seconds"] + time.perf_counter() - started, 1),
                                     "loss": run["losses"][-1], **{t: s["accuracy"] for t, s in scores.items()}})
                log(f"pretrain-lm step {step}: text-QA accuracy {scores['overall']['accuracy']:.3f} ("
                    + ", ".join(f"{t} {s['accuracy']:.2f}" for t, s in scores.items() if t != "overall") + ")")
                _save_state(lm_dir, config, model, optimizer,
                            run | {"seconds": run["seconds"] + time.perf_counter() - started})
    scores = scores or _scores(model, heldout, drills, tokenizer.pad_token_id)
    return _finish(lm_dir, scale, config, model, run, scores, run["seconds"] + time.perf_counter() - started,
                   out_of_time, ancestors)


def _finish(lm_dir: Path, scale: str, config: PretrainLMConfig, model, run: dict, scores: dict, seconds: float,
            out_of_time: bool, ancestors: list[dict]) -> dict:
    """The report; a finished run's weights saved with `save_pretrained` and its resume state removed."""
    finished = run["step"] >= config.steps
    if finished:
        model.save_pretrained(lm_dir)
        (lm_dir / STATE_FILE).unlink(missing_ok=True)
    losses = run["losses"]
    report = {"scale": scale, "config": config.model_dump(), "steps": run["step"], "finished": finished,
              "stopped_by_time_budget": out_of_time, "train_seconds": round(seconds, 1),
              "torch_threads": torch.get_num_threads(), "final_loss": losses[-1] if losses else None,
              "loss_curve": losses[:: max(1, len(losses) // 200)], "text_qa": scores, "curve": run["curve"],
              "lineage": ancestors}
    (lm_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report
