"""The validation probe: what ASHA ranks trials by while they train, and whether a model looks at its images.

On held-out stage-2 records, teacher-forced: the validation loss, the answer accuracy (an answer counts when every
one of its tokens is the argmax given the right prefix, which is exactly what greedy decoding would produce), and
`val_image_reliance`: how much worse each answer gets when its image is swapped for another one of the batch, in
nats **per answer** (the loss summed over the answer's tokens, swapped minus right, averaged over answers). Per
answer, not per token: an answer like " D</s>" has one informative token among three, so a per-token mean would
dilute the figure about 3x; `val_image_reliance_per_token` is reported beside it. Near 0, the model answers from
priors without looking. Each rank takes a share; sums are all-reduced.
"""

from __future__ import annotations

import torch

from raylayers.data import IGNORE_INDEX, Sample, collate
from raylayers.features import ImageFeatures


def all_reduce_sum(values: list[float]) -> list[float]:
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor.tolist()


def answer_spans(supervised: list[bool]) -> list[tuple[int, int]]:
    """[start, end) of each run of supervised positions: one per answer (with its end-of-turn tokens)."""
    spans, position = [], 0
    while position < len(supervised):
        if supervised[position]:
            end = position
            while end < len(supervised) and supervised[end]:
                end += 1
            spans.append((position, end))
            position = end
        else:
            position += 1
    return spans


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per position (0 where unsupervised)."""
    flat = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=IGNORE_INDEX, reduction="none")
    return flat.view(labels.shape)


@torch.no_grad()
def probe(engine, samples: list[Sample], features: ImageFeatures, rank: int, world_size: int,
          micro_batch: int, pad_id: int) -> dict:
    """Validation loss, answer accuracy (greedy exact match, computed teacher-forced) and image reliance per
    answer and per token (module docstring). Each rank takes a share; sums are all-reduced."""
    engine.eval()
    mine = samples[rank::world_size]
    # loss, tokens, answers, correct; over batches measured swapped too: right loss, swapped-minus-right loss,
    # answers, tokens
    totals = [0.0] * 8
    for start in range(0, len(mine), micro_batch):
        batch = mine[start:start + micro_batch]
        tensors = {k: v.to(engine.device) for k, v in collate(batch, pad_id).items()}
        image_features = features.get(batch)
        logits = engine(**tensors, features=image_features).logits[:, :-1].float()
        labels = tensors["labels"][:, 1:]
        supervised = labels != IGNORE_INDEX
        right = _token_losses(logits, labels)
        swappable = image_features is not None and next(iter(image_features.values())).shape[0] > 1
        if swappable:
            swapped = {layer: value.roll(1, dims=0) for layer, value in image_features.items()}
            gap = _token_losses(engine(**tensors, features=swapped).logits[:, :-1].float(), labels) - right
        hits = (logits.argmax(-1) == labels) | ~supervised
        spans = [answer_spans(row) for row in supervised.tolist()]
        batch_totals = [float(right.sum()), int(supervised.sum()), sum(len(row) for row in spans),
                        sum(bool(hits[row, a:b].all()) for row, row_spans in enumerate(spans) for a, b in row_spans)]
        totals[:4] = [total + part for total, part in zip(totals[:4], batch_totals)]
        if swappable:  # the same answers and tokens, measured with swapped images too
            totals[4:] = [totals[4] + batch_totals[0], totals[5] + float(gap.sum()), totals[6] + batch_totals[2],
                          totals[7] + batch_totals[1]]
    loss, tokens, answers, correct, paired, gap_sum, gap_answers, gap_tokens = all_reduce_sum(totals)
    engine.train()
    metrics = {"val_loss": loss / max(tokens, 1), "val_answer_accuracy": correct / max(answers, 1),
               "val_answers": int(answers)}
    if gap_tokens:
        metrics["val_loss_shuffled_images"] = (paired + gap_sum) / gap_tokens
        metrics["val_image_reliance"] = gap_sum / gap_answers
        metrics["val_image_reliance_per_token"] = gap_sum / gap_tokens
    return metrics
