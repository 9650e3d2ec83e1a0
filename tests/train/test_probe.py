"""The probe's arithmetic: answers found as runs of supervised tokens, image reliance per answer and per token."""

from types import SimpleNamespace

import pytest
import torch

from raylayers.data import IGNORE_INDEX, Sample
from raylayers.train.probe import answer_spans, probe

VOCAB = 8


class ImageReader(torch.nn.Module):
    """A model that reads its image on one answer token only: the answer is `<filler> <image id> <end>`, as world
    answers are `' ' 'D' '</s>'`; the first and last tokens are predicted from the text alone."""

    device = torch.device("cpu")

    def forward(self, input_ids, attention_mask, labels, features):
        image = features[0][:, 0, 0].long()  # (B,) the image id
        logits = torch.zeros(*input_ids.shape, VOCAB)
        logits[..., 1] = 4.0  # filler and end tokens are always 1: right with or without the image
        logits[:, 2, :] = 0.0
        logits[torch.arange(len(image)), 2, image] = 6.0  # position 2 predicts token 3: the image id
        return SimpleNamespace(logits=logits)


class Features:
    def __init__(self, ids):
        self.ids = ids

    def get(self, batch):
        return {0: torch.tensor([[[float(self.ids[s.id])]] for s in batch])}


def test_answer_spans_are_runs_of_supervised_positions():
    assert answer_spans([False, True, True, False, True]) == [(1, 3), (4, 5)]
    assert answer_spans([]) == [] and answer_spans([True]) == [(0, 1)]


def test_image_reliance_is_per_answer_and_three_times_the_per_token_figure():
    samples = [Sample(str(i), [0, 5, 1, i + 2, 1], [IGNORE_INDEX, IGNORE_INDEX, 1, i + 2, 1], image="x")
               for i in range(4)]
    metrics = probe(ImageReader(), samples, Features({str(i): i + 2 for i in range(4)}), rank=0, world_size=1,
                    micro_batch=4, pad_id=0)
    assert metrics["val_answers"] == 4 and metrics["val_answer_accuracy"] == 1.0
    right = -torch.log_softmax(torch.tensor([0.0] * 2 + [6.0] + [0.0] * 5), 0)[2]
    wrong = -torch.log_softmax(torch.tensor([0.0] * 2 + [6.0] + [0.0] * 5), 0)[3]  # another image's id
    assert metrics["val_image_reliance"] == pytest.approx(float(wrong - right), rel=1e-5)
    assert metrics["val_image_reliance_per_token"] == pytest.approx(metrics["val_image_reliance"] / 3, rel=1e-5)
    assert metrics["val_loss_shuffled_images"] > metrics["val_loss"]
