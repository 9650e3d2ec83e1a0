"""lmms-eval bridge: run the official lmms-eval suite on a native raylayers checkpoint.

The bridge needs lmms-eval (`pip install lmms-eval`, checked with 0.7.3); nothing else in raylayers imports it.
Installed raylayers declares the model to lmms-eval through the `lmms_eval.models` entry point (`model_manifest`),
so lmms-eval's own command line finds it:

    lmms-eval --model raylayers --model_args checkpoint=runs/demo/train --batch_size 8 --device cpu \
        --tasks pope --output_path runs/lmms-eval

From a source checkout that is not installed, run the same command line through this module, which registers the
model first: `python -m raylayers.evaluate.lmms_eval_bridge --model raylayers ...`. (`batch_size` and `device` are
lmms-eval's own flags: it passes them to every model, so they cannot also be given in `--model_args`.)

The model answers lmms-eval's "simple" model API (`lmms_eval.api.model.lmms`): `generate_until` (greedy, batched,
with the checkpoint's own prompt template, cut at the task's `until` strings) and `loglikelihood`. What the real
lmms-eval (0.7.3) does with a log-likelihood, read from its source, and what the bridge answers:
- its multiple-choice scoring picks `argmin` of the values ("we return the actual loss in many model
  loglikelihood", api/task.py; its llava_hf returns the loss), so the value is the continuation's negative
  log-likelihood: summed over its tokens as the template places an answer after the prompt, end of turn
  included, which ranks options exactly as `raylayers eval --mode likelihood` does;
- its evaluator turns every response that is not text into `str(response)` (`unwrap_generation_output`), which
  breaks a plain `(value, is_greedy)` pair, so where it would, the pair goes inside its `GenerationResult`,
  which it unwraps as it is.
The pure functions below hold the logic and are tested without lmms-eval; the class is built, on first use, only
where lmms-eval is importable.
"""

from __future__ import annotations

import sys

import torch

from raylayers.features import tower_features

MODEL_NAME = "raylayers"
CLASS_PATH = "raylayers.evaluate.lmms_eval_bridge.RaylayersLMMS"  # where lmms-eval imports the class from


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


def cut_at_stops(text: str, until) -> str:
    """The text up to the first of the stop strings (lmms-eval's `until`: a string or a list of them)."""
    stops = [until] if isinstance(until, str) else list(until or [])
    for stop in stops:
        if stop:
            text = text.split(stop, 1)[0]
    return text


def continuation_logprob(predictor, context: str, continuation: str, image) -> tuple[float, bool]:
    """(log p(continuation | prompt), whether greedy decoding would produce exactly the continuation), the
    continuation as the template places an answer (stripped, end of turn included)."""
    prompt = predictor.encoder.prompt(context, has_image=image is not None)
    target = predictor.encoder.answer_ids(context, continuation.strip(), has_image=image is not None)
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


def response_wrapper():
    """How a `(negative log-likelihood, is_greedy)` pair must be returned so that this lmms-eval keeps it: as is,
    or inside a `GenerationResult` where its evaluator would make a string of a plain pair (0.7.3)."""
    try:
        from lmms_eval.api.instance import GenerationResult, unwrap_generation_output
    except ImportError:
        return lambda pair: pair
    if unwrap_generation_output((0.0, True))[0] == (0.0, True):
        return lambda pair: pair
    return lambda pair: GenerationResult(text=pair)


def model_manifest():
    """The `lmms_eval.models` entry point: lmms-eval's manifest naming the model and where its class lives."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=CLASS_PATH)


def register():
    """Make `--model raylayers` known to lmms-eval in this process (needed when raylayers is not installed, so its
    entry point is not either); returns the model class."""
    try:
        import lmms_eval.models as lmms_models
    except ImportError as err:
        raise ImportError("the lmms-eval bridge needs lmms-eval: pip install lmms-eval") from err
    lmms_models.MODEL_REGISTRY_V2.register_manifest(model_manifest(), overwrite=True)
    return model_class()


_MODEL_CLASS = None


def model_class():
    """The lmms-eval model class (built once; it subclasses lmms-eval's `lmms`, so lmms-eval must be importable)."""
    global _MODEL_CLASS
    if _MODEL_CLASS is None:
        _MODEL_CLASS = _build_model_class()
    return _MODEL_CLASS


def __getattr__(name: str):  # lmms-eval imports CLASS_PATH: build the class when it is asked for
    if name == "RaylayersLMMS":
        return model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _batch_size(value) -> int:
    return int(value) if str(value).isdigit() and int(value) > 0 else 1  # lmms-eval may pass "auto"


def _build_model_class():
    from lmms_eval.api.model import lmms

    from raylayers.evaluate.predict import Predictor

    class RaylayersLMMS(lmms):
        """A native raylayers checkpoint as an lmms-eval "simple" model."""

        def __init__(self, checkpoint: str, device: str | None = None, batch_size=1, max_new_tokens: int = 16,
                     **kwargs):  # kwargs: what lmms-eval passes every model (max_batch_size, ...), unused
            super().__init__()
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            self.batch_size_per_gpu = _batch_size(batch_size)
            self.predictor = Predictor(checkpoint, device=device, batch_size=self.batch_size_per_gpu)
            self.max_new_tokens = int(max_new_tokens)
            self.wrap = response_wrapper()

        def _image(self, doc_to_visual, doc_id, task, split):
            visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
            return visuals[0].convert("RGB") if visuals else None

        def generate_until(self, requests):
            answers = []
            for start in range(0, len(requests), self.batch_size_per_gpu):
                batch = [request.args for request in requests[start:start + self.batch_size_per_gpu]]
                images = [self._image(visual, doc_id, task, split) for _, _, visual, doc_id, task, split in batch]
                limit = max(int(kwargs.get("max_new_tokens") or self.max_new_tokens) for _, kwargs, *_ in batch)
                texts = answer_contexts(self.predictor, [args[0] for args in batch], images, limit)
                answers.extend(cut_at_stops(text, args[1].get("until")) for text, args in zip(texts, batch))
            return answers

        def loglikelihood(self, requests):
            results = []
            for request in requests:
                context, doc_to_target, doc_to_visual, doc_id, task, split = request.args
                if callable(doc_to_target):  # output_type loglikelihood: the doc's target; multiple_choice: a string
                    doc_to_target = doc_to_target(self.task_dict[task][split][doc_id])
                image = self._image(doc_to_visual, doc_id, task, split)
                logprob, greedy = continuation_logprob(self.predictor, context, str(doc_to_target), image)
                results.append(self.wrap((-logprob, greedy)))  # a loss: lmms-eval ranks options by argmin
            return results

        def generate_until_multi_round(self, requests):
            raise NotImplementedError("multi-round generation is not supported by the raylayers bridge")

    return RaylayersLMMS


if __name__ == "__main__":  # python -m raylayers.evaluate.lmms_eval_bridge --model raylayers ... (lmms-eval's CLI)
    register()
    from lmms_eval.__main__ import cli_evaluate

    sys.exit(cli_evaluate())
