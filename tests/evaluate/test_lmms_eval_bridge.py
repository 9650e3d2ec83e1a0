"""The lmms-eval bridge against a stand-in of lmms-eval 0.7.3's API (CI does not install lmms-eval; the real one is
checked by benchmarks/lmms_eval_check.py): the registry it resolves `--model` through, the request tuples it
builds, what its evaluator does with responses, and its argmin over multiple-choice values."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest
from PIL import Image

from raylayers.evaluate import lmms_eval_bridge as bridge


@dataclass
class GenerationResult:
    text: object
    token_counts: object = None


def unwrap_generation_output(output):  # lmms-eval 0.7.3's: anything but text becomes str(output)
    if isinstance(output, GenerationResult):
        return output.text, output.token_counts
    if isinstance(output, str):
        return output, None
    return str(output), None


class Registry:
    def __init__(self):
        self.manifests = {}

    def register_manifest(self, manifest, overwrite=False):
        self.manifests[manifest.model_id] = manifest


@dataclass(frozen=True)
class ModelManifest:
    model_id: str
    simple_class_path: str | None = None
    chat_class_path: str | None = None


class Request:
    def __init__(self, *args):
        self.args = args


@pytest.fixture
def fake_lmms_eval(monkeypatch):
    class lmms:  # noqa: N801 (lmms-eval's name)
        def __init__(self):
            self.task_dict = {}

    modules = {name: types.ModuleType(name) for name in
               ("lmms_eval", "lmms_eval.api", "lmms_eval.api.model", "lmms_eval.api.instance", "lmms_eval.models",
                "lmms_eval.models.registry_v2")}
    modules["lmms_eval.api.model"].lmms = lmms
    modules["lmms_eval.api.instance"].GenerationResult = GenerationResult
    modules["lmms_eval.api.instance"].unwrap_generation_output = unwrap_generation_output
    modules["lmms_eval.models"].MODEL_REGISTRY_V2 = Registry()
    modules["lmms_eval.models.registry_v2"].ModelManifest = ModelManifest
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(bridge, "_MODEL_CLASS", None)
    return modules


def test_cut_at_stops():
    assert bridge.cut_at_stops("yes\n\nQ: more", ["\n\n"]) == "yes"
    assert bridge.cut_at_stops("yes. no", ".") == "yes"
    assert bridge.cut_at_stops("yes", None) == "yes"


def test_registered_model_answers_lmms_eval_requests(fake_lmms_eval, tiny_stack, tiny_checkpoint):
    cls = bridge.register()
    manifest = fake_lmms_eval["lmms_eval.models"].MODEL_REGISTRY_V2.manifests["raylayers"]
    assert manifest.simple_class_path == bridge.CLASS_PATH and bridge.RaylayersLMMS is cls
    # what lmms-eval passes every model besides --model_args
    model = cls(checkpoint=str(tiny_checkpoint), batch_size="2", max_batch_size=None, device="cpu")
    image = Image.open(next((tiny_stack / "world" / "bench" / "count" / "images").iterdir()))
    docs = [{"image": image, "question": "How many circles are there?", "answer": "yes"}] * 3
    model.task_dict = {"t": {"test": docs}}
    visual = lambda doc: [doc["image"]]  # noqa: E731
    answers = model.generate_until([Request("How many?", {"max_new_tokens": 3, "until": ["\n\n"]}, visual, i, "t",
                                            "test") for i in range(3)])
    assert len(answers) == 3 and all(isinstance(answer, str) for answer in answers)
    # multiple_choice: one request per option, the continuation a string after the target delimiter
    results = model.loglikelihood([Request("Is there a circle?", f" {option}", visual, 0, "t", "test")
                                   for option in ("yes", "no")])
    pairs = [unwrap_generation_output(result)[0] for result in results]  # kept whole by the evaluator
    logprobs = [bridge.continuation_logprob(model.predictor, "Is there a circle?", option, image.convert("RGB"))
                for option in ("yes", "no")]
    for (loss, greedy), (logprob, expected_greedy) in zip(pairs, logprobs):
        assert loss == pytest.approx(-logprob) and loss > 0 and greedy == expected_greedy  # a loss: argmin wins
    # output_type loglikelihood: the doc's target through doc_to_target
    [result] = model.loglikelihood([Request("Is there a circle?", lambda doc: doc["answer"], visual, 0, "t", "test")])
    assert unwrap_generation_output(result)[0][0] == pytest.approx(pairs[0][0])


def test_pairs_go_unwrapped_where_the_evaluator_keeps_them(fake_lmms_eval, monkeypatch):
    monkeypatch.setattr(fake_lmms_eval["lmms_eval.api.instance"], "unwrap_generation_output",
                        lambda output: (output, None))
    assert bridge.response_wrapper()((1.5, False)) == (1.5, False)
