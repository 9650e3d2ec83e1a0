import pytest
import torch
from PIL import Image

from raylayers.cli import main
from raylayers.config import ModelConfig
from raylayers.errors import UserError
from raylayers.export import compare_logits, export_hf
from raylayers.model import LlavaLayers, load_tokenizer


def save_model(stack, folder, connector, layers, projector="mlp2x_gelu"):
    config = ModelConfig(encoder=str(stack / "encoder"), lm=str(stack / "encoder" / "lm"), connector=connector,
                         layers=layers, projector=projector)
    tokenizer = load_tokenizer(config.lm)
    torch.manual_seed(1)
    model = LlavaLayers.build(config, tokenizer, seed=3)
    for parameter in model.connector.parameters():  # not the initial values: the export must copy them
        torch.nn.init.normal_(parameter, std=0.05)
    model.save(folder, tokenizer)
    return model


@pytest.mark.parametrize("connector, layers", [("mlp2x_gelu", [-2]), ("concat", [3, 1])])
def test_exported_llava_gives_the_same_logits(tiny_stack, tmp_path, connector, layers):
    from transformers import AutoProcessor

    save_model(tiny_stack, tmp_path / "native", connector, layers)
    assert main(["export", "--checkpoint", str(tmp_path / "native"), "--format", "hf",
                 "--out", str(tmp_path / "hf")]) == 0
    images = [Image.open(p).convert("RGB") for p in sorted((tiny_stack / "world" / "images").glob("*.png"))[:2]]
    assert compare_logits(tmp_path / "native", tmp_path / "hf", images, "How many circles are there?") < 1e-4
    processor = AutoProcessor.from_pretrained(tmp_path / "hf")
    inputs = processor(text="<image>\nHow many circles are there?", images=images[0], return_tensors="pt")
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_token_id).sum()) == 16  # the processor expands <image> correctly


@pytest.mark.parametrize("connector, layers, projector", [("mmfuser", [1, 3], "mlp2x_gelu"),
                                                          ("concat", [1, 3], "linear")])
def test_inexpressible_connectors_are_refused_with_the_reason(tiny_stack, tmp_path, connector, layers, projector):
    save_model(tiny_stack, tmp_path / "native", connector, layers, projector)
    with pytest.raises(UserError, match="cannot export .* to HF: .*(no equivalent|Linear-GELU-Linear)"):
        export_hf(tmp_path / "native", tmp_path / "hf")
