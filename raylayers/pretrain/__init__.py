"""The offline stack's own pretraining: what a real user downloads (a published CLIP, a pretrained LLM), made here.

    encoder.py  `raylayers pretrain-encoder`: a small CLIP trained contrastively on a world, plus the LM's config
    lm.py       the world's LM taught to read on text alone (captions where the image goes, the world's questions)
"""

from raylayers.pretrain.encoder import lr_schedule, pretrain_encoder, retrieval_accuracy
from raylayers.pretrain.lm import pretrain_lm, text_qa_accuracy

__all__ = ["lr_schedule", "pretrain_encoder", "pretrain_lm", "retrieval_accuracy", "text_qa_accuracy"]
