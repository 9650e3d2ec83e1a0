"""The validation probe: what ASHA ranks trials by while they train, and whether a model looks at its images.

On held-out stage-2 records, teacher-forced: the validation loss, the answer accuracy (an answer counts when every
one of its tokens is the argmax given the right prefix, which is exactly what greedy decoding would produce), and
`val_image_reliance`: the loss with each image swapped for another one of the batch minus the loss with the right
ones. Near 0, the model answers from priors without looking. Each rank takes a share; sums are all-reduced.
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


@torch.no_grad()
def probe(engine, samples: list[Sample], features: ImageFeatures, rank: int, world_size: int,
          micro_batch: int, pad_id: int) -> dict:
    """Validation loss and answer accuracy (greedy exact match, computed teacher-forced: an answer counts when
    every one of its tokens is the argmax given the right prefix, which is exactly what greedy decoding would
    produce), and the loss with each image swapped for another one of the batch: `val_image_reliance` (shuffled
    minus right) near 0 means the model answers from priors without looking. Each rank takes a share; sums are
    all-reduced."""
    engine.eval()
    mine = samples[rank::world_size]
    loss_sum, token_count, answers, correct = 0.0, 0, 0, 0
    shuffled_sum, paired_sum, shuffled_tokens = 0.0, 0.0, 0  # the same tokens with swapped / right images
    for start in range(0, len(mine), micro_batch):
        batch = mine[start:start + micro_batch]
        tensors = {k: v.to(engine.device) for k, v in collate(batch, pad_id).items()}
        image_features = features.get(batch)
        output = engine(**tensors, features=image_features)
        logits = output.logits[:, :-1].float()
        labels = tensors["labels"][:, 1:]
        supervised = labels != IGNORE_INDEX
        batch_loss = float(torch.nn.functional.cross_entropy(logits[supervised], labels[supervised], reduction="sum"))
        loss_sum += batch_loss
        token_count += int(supervised.sum())
        if image_features is not None and next(iter(image_features.values())).shape[0] > 1:
            swapped = {layer: value.roll(1, dims=0) for layer, value in image_features.items()}
            other = engine(**tensors, features=swapped).logits[:, :-1].float()
            shuffled_sum += float(torch.nn.functional.cross_entropy(other[supervised], labels[supervised],
                                                                    reduction="sum"))
            paired_sum += batch_loss
            shuffled_tokens += int(supervised.sum())
        hits = (logits.argmax(-1) == labels) | ~supervised
        for row in range(labels.shape[0]):  # answers are runs of supervised tokens
            flags, positions = supervised[row].tolist(), hits[row].tolist()
            position = 0
            while position < len(flags):
                if flags[position]:
                    end = position
                    while end < len(flags) and flags[end]:
                        end += 1
                    answers += 1
                    correct += all(positions[position:end])
                    position = end
                else:
                    position += 1
    loss_sum, token_count, answers, correct, shuffled_sum, paired_sum, shuffled_tokens = all_reduce_sum(
        [loss_sum, token_count, answers, correct, shuffled_sum, paired_sum, shuffled_tokens])
    engine.train()
    metrics = {"val_loss": loss_sum / max(token_count, 1), "val_answer_accuracy": correct / max(answers, 1),
               "val_answers": int(answers)}
    if shuffled_tokens:
        metrics["val_loss_shuffled_images"] = shuffled_sum / shuffled_tokens
        metrics["val_image_reliance"] = (shuffled_sum - paired_sum) / shuffled_tokens
    return metrics
