"""lmms-eval bridge: run the official lmms-eval suite on a native raylayers checkpoint.

The bridge needs lmms-eval (`pip install lmms-eval`); nothing else in raylayers imports it. Run lmms-eval's own
command line through this module, which registers the model first:

    python -m raylayers.evaluate.lmms_eval_bridge --model raylayers \
        --model_args checkpoint=runs/demo/train,batch_size=8 --tasks pope --output_path runs/lmms-eval

The model answers lmms-eval's
"simple" model API: `generate_until` (greedy, batched, with the checkpoint's own prompt template) and
`loglikelihood` (summed log-probability of the continuation after the prompt). The pure functions below hold the
logic and are tested without lmms-eval; the class is built only when lmms-eval is importable.
"""

from __future__ import annotations

import sys

import torch

from raylayers.features import tower_features


def answer_contexts(predictor, contexts: list[str], images: list, max_new_tokens: int = 16) -> list[str]:
    """Greedy answers to free-text prompts, one PIL image (or None) each."""
    prompts = [predictor.encoder.prompt(context, has_image=image is not None)
               for context, image in zip(contexts, images)]
    with_images = [image for image in images if image is not None]
    features = None
    if with_images:
        if len(with_images) != len(images):
            raise ValueError("a batch mixes questions with and without images; use --batch_size 1")
        features = tower_features(predictor.model.tower, with_images, predictor.model.vision_layers,
                                  predictor.device)
    return predictor.greedy(prompts, features, max_new_tokens)


def continuation_logprob(predictor, context: str, continuation: str, image) -> tuple[float, bool]:
    """(log p(continuation | prompt), whether greedy decoding would produce exactly the continuation)."""
    prompt = predictor.encoder.prompt(context, has_image=image is not None)
    target = predictor.encoder.answer_ids(context, continuation.strip(), has_image=image is not None, with_end=False)
    ids = torch.tensor([prompt + target], device=predictor.device)
    features = None
    if image is not None:
        features = tower_features(predictor.model.tower, [image], predictor.model.vision_layers, predictor.device)
    with torch.no_grad():
        logits = predictor.model(input_ids=ids, features=features).logits.float()[0]
    logprobs = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
    chosen = torch.tensor(target, device=predictor.device)
    total = float(logprobs.gather(-1, chosen[:, None]).sum())
    greedy = bool((logprobs.argmax(-1) == chosen).all())
    return total, greedy


def register():
    """Register `raylayers` as an lmms-eval model (needs lmms-eval installed)."""
    try:
        from lmms_eval.api.model import lmms
        from lmms_eval.api.registry import register_model
    except ImportError as err:
        raise ImportError("the lmms-eval bridge needs lmms-eval: pip install lmms-eval") from err

    from raylayers.evaluate.predict import Predictor

    @register_model("raylayers")
    class RaylayersLMMS(lmms):
        def __init__(self, checkpoint: str, device: str = "cpu", batch_size: int = 1, max_new_tokens: int = 16,
                     **kwargs):
            super().__init__()
            self.predictor = Predictor(checkpoint, device=device, batch_size=int(batch_size))
            self.batch_size_per_gpu = int(batch_size)
            self.max_new_tokens = int(max_new_tokens)

        def _image(self, doc_to_visual, doc_id, task, split):
            visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
            return visuals[0].convert("RGB") if visuals else None

        def generate_until(self, requests):
            answers = []
            for start in range(0, len(requests), self.batch_size_per_gpu):
                batch = requests[start:start + self.batch_size_per_gpu]
                contexts, images, limit = [], [], self.max_new_tokens
                for request in batch:
                    context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
                    contexts.append(context)
                    images.append(self._image(doc_to_visual, doc_id, task, split))
                    limit = int(gen_kwargs.get("max_new_tokens", limit))
                answers.extend(answer_contexts(self.predictor, contexts, images, limit))
            return answers

        def loglikelihood(self, requests):
            results = []
            for request in requests:
                context, doc_to_target, doc_to_visual, doc_id, task, split = request.args
                doc = self.task_dict[task][split][doc_id]
                continuation = doc_to_target(doc) if callable(doc_to_target) else doc_to_target
                image = self._image(doc_to_visual, doc_id, task, split)
                results.append(continuation_logprob(self.predictor, context, str(continuation), image))
            return results

        def generate_until_multi_round(self, requests):
            raise NotImplementedError("multi-round generation is not supported by the raylayers bridge")

    return RaylayersLMMS


if __name__ == "__main__":  # python -m raylayers.evaluate.lmms_eval_bridge --model raylayers ... (lmms-eval's CLI)
    register()
    from lmms_eval.__main__ import cli_evaluate

    sys.exit(cli_evaluate())
