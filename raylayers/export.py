"""`raylayers export --format hf`: a raylayers checkpoint as a transformers `LlavaForConditionalGeneration` folder.

transformers' LLaVA reads `hidden_states[l]` for one layer or a list of layers (channel-concatenated in list
order), drops CLS with `vision_feature_select_strategy="default"`, and projects with Linear-GELU-Linear. So the
connectors it can express are `mlp2x_gelu` (one layer) and `concat` with the `mlp2x_gelu` projector; every other
connector is refused with the reason. The folder loads offline with `LlavaForConditionalGeneration.from_pretrained`
and `AutoProcessor.from_pretrained`, and gives the native model's logits (tested).
"""

from __future__ import annotations

from pathlib import Path

import torch

from raylayers.errors import UserError
from raylayers.prompts import IMAGE_TOKEN


def exportable(model) -> str | None:
    """None when transformers' LLaVA can express the model, else why not (the connector says for itself)."""
    reason = type(model.connector).export_refusal(model.spec)
    if reason:
        return reason
    if type(model.tower.model).__name__ not in ("CLIPVisionModel", "SiglipVisionModel"):
        return f"vision tower {type(model.tower.model).__name__} is not supported by the HF export"
    return None


def export_hf(checkpoint: str | Path, out: str | Path) -> Path:
    """Write `out` as a LLaVA-HF folder (model + processor + tokenizer)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from raylayers.model import LlavaLayers

    model, tokenizer = LlavaLayers.load(checkpoint)
    reason = exportable(model)
    if reason:
        raise UserError(f"cannot export '{checkpoint}' to HF: {reason}")
    layers = model.vision_layers  # positive numbers = hidden_states indices
    tower = model.tower
    has_cls = type(tower.model).__name__ == "CLIPVisionModel"
    text_config = model.lm.config
    config = LlavaConfig(
        vision_config=tower.model.config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_id=model.image_token_id,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default" if has_cls else "full",
        vision_feature_layer=layers[0] if len(layers) == 1 else list(layers),
        image_seq_length=model.num_image_tokens,
        multimodal_projector_bias=True,
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    llava = LlavaForConditionalGeneration(config).eval()
    llava.model.vision_tower.load_state_dict(tower.model.state_dict())
    projector = model.connector.proj  # Sequential(Linear, GELU, Linear)
    llava.model.multi_modal_projector.linear_1.load_state_dict(projector[0].state_dict())
    llava.model.multi_modal_projector.linear_2.load_state_dict(projector[2].state_dict())
    base = model.lm.get_decoder() if hasattr(model.lm, "get_decoder") else model.lm.model
    llava.model.language_model.load_state_dict(base.state_dict())
    llava.lm_head.load_state_dict(model.lm.get_output_embeddings().state_dict())
    out = Path(out)
    llava.save_pretrained(out)
    processor = LlavaProcessor(
        image_processor=tower.image_processor, tokenizer=tokenizer, patch_size=tower.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1 if has_cls else 0, image_token=IMAGE_TOKEN,
        chat_template=getattr(tokenizer, "chat_template", None))
    processor.save_pretrained(out)
    return out


@torch.no_grad()
def compare_logits(checkpoint: str | Path, exported: str | Path, images, question: str) -> float:
    """Largest absolute logit difference between the native and the exported model on one prompt."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from raylayers.data import ConversationEncoder
    from raylayers.model import LlavaLayers

    native, tokenizer = LlavaLayers.load(checkpoint)
    native.eval()
    encoder = ConversationEncoder(tokenizer, native.image_token_id, native.num_image_tokens, 4096, "chat")
    input_ids = torch.tensor([encoder.prompt(question)] * len(images))
    pixels = native.tower.preprocess(images)
    ours = native(input_ids, pixel_values=pixels).logits
    hf = LlavaForConditionalGeneration.from_pretrained(exported).eval()
    AutoProcessor.from_pretrained(exported)  # must load offline
    theirs = hf(input_ids=input_ids, pixel_values=pixels, attention_mask=torch.ones_like(input_ids)).logits
    return float((ours - theirs).abs().max())
