import pytest
import torch

from raylayers.config import ModelConfig
from raylayers.data import ConversationEncoder
from raylayers.model import LlavaLayers, load_tokenizer


def build(stack, connector="mlp2x_gelu", layers=(-2,)):
    config = ModelConfig(encoder=str(stack / "encoder"), lm=str(stack / "encoder" / "lm"), connector=connector,
                         layers=list(layers))
    tokenizer = load_tokenizer(config.lm)
    return LlavaLayers.build(config, tokenizer), tokenizer


def batch(model, tokenizer, count=2):
    from PIL import Image

    encoder = ConversationEncoder(tokenizer, model.image_token_id, model.num_image_tokens, 128, "chat")
    conversation = [{"from": "human", "value": "<image>\nHow many circles are there?"}, {"from": "gpt", "value": "2"}]
    ids, labels = encoder.encode(conversation)
    input_ids = torch.tensor([ids] * count)
    pixels = model.tower.preprocess([Image.new("RGB", (32, 32), (40 * i, 90, 200)) for i in range(count)])
    return input_ids, torch.tensor([labels] * count), pixels


def test_forward_merges_image_tokens_and_supervises_answers(tiny_stack):
    model, tokenizer = build(tiny_stack)
    input_ids, labels, pixels = batch(model, tokenizer)
    output = model.eval()(input_ids, labels=labels, pixel_values=pixels)
    assert output.logits.shape[:2] == input_ids.shape and torch.isfinite(output.loss)
    metadata = model.metadata()
    assert metadata["num_image_tokens"] == 16 and metadata["parameters"]["connector"] > 0
    assert metadata["vision_layers"] == [model.tower.num_layers - 1]


def test_training_loss_skips_the_head_where_nothing_is_supervised_and_matches_the_lm_loss(tiny_stack):
    """In training the head runs only at supervised positions: the loss and every gradient equal the LM's own."""
    model, tokenizer = build(tiny_stack)
    model.lm.requires_grad_(True)
    input_ids, labels, pixels = batch(model, tokenizer, count=3)
    labels[1, -2:] = -100  # rows supervise different positions
    assert model.lm.config.model_type == "llama"

    def loss_and_grads(training: bool):
        model.zero_grad(set_to_none=True)
        output = model.train(training)(input_ids, labels=labels, pixel_values=pixels)
        output.loss.backward()
        return output, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    fast, fast_grads = loss_and_grads(True)
    full, full_grads = loss_and_grads(False)
    assert fast.logits is None and full.logits is not None
    assert torch.allclose(fast.loss, full.loss, atol=1e-6)
    assert fast_grads.keys() == full_grads.keys() and len(fast_grads) > 10
    for name, grad in fast_grads.items():
        assert torch.allclose(grad, full_grads[name], atol=1e-6), name


def test_image_feature_count_must_match_image_tokens(tiny_stack):
    model, tokenizer = build(tiny_stack)
    input_ids, labels, pixels = batch(model, tokenizer)
    with pytest.raises(ValueError, match="image features 32 vs image tokens 16"):
        model(input_ids[:1], pixel_values=pixels)


def test_generate_returns_new_tokens(tiny_stack):
    model, tokenizer = build(tiny_stack)
    encoder = ConversationEncoder(tokenizer, model.image_token_id, model.num_image_tokens, 128, "chat")
    prompt = torch.tensor([encoder.prompt("How many circles are there?")])
    _, _, pixels = batch(model, tokenizer, 1)
    new = model.generate(prompt, attention_mask=torch.ones_like(prompt), pixel_values=pixels, max_new_tokens=3,
                         pad_token_id=tokenizer.pad_token_id)
    assert new.shape[0] == 1 and 1 <= new.shape[1] <= 3


def test_internal_direct_adds_to_the_mapped_llm_block(tiny_stack):
    model, tokenizer = build(tiny_stack, "internal_direct", layers=(1, 3))
    input_ids, labels, pixels = batch(model, tokenizer)
    before = model(input_ids, pixel_values=pixels).logits
    torch.nn.init.normal_(model.connector.extra_mlps[0][-1].weight)  # open the zero-initialised branch
    after = model(input_ids, pixel_values=pixels).logits
    assert not torch.allclose(before, after)
    prompt = input_ids[:1, :20]
    new = model.generate(prompt, attention_mask=torch.ones_like(prompt), pixel_values=pixels[:1], max_new_tokens=2,
                         pad_token_id=tokenizer.pad_token_id)
    assert new.shape[1] >= 1 and model._additions == {}


def test_save_and_load_round_trip(tiny_stack, tmp_path):
    model, tokenizer = build(tiny_stack, "concat", layers=(1, 3))
    input_ids, labels, pixels = batch(model, tokenizer)
    expected = model(input_ids, pixel_values=pixels).logits
    model.save(tmp_path / "ckpt", tokenizer)
    loaded, _ = LlavaLayers.load(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(input_ids, pixel_values=pixels).logits, expected)
