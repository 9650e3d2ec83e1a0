"""The LLaVA-style model: frozen vision tower (selected layers only) + connector + any transformers causal LM.

Image tokens are merged the way transformers' `LlavaModel` does it: the prompt holds one `<image>` token id per
visual token; their embeddings are replaced, in order, by the connector's output (`masked_scatter`), and a count
mismatch is an error that states both numbers. Generation is the LM's own `generate` on `inputs_embeds` (KV cache,
greedy or sampling). `internal_direct` additions enter through forward pre-hooks on the LM's blocks, applied on the
full-sequence pass only (the prompt), never on single-token decoding steps.

Saved as a folder: `raylayers_model.json` (what to rebuild), `connector.safetensors`, and `lm/` (the LM with
`save_pretrained`, only when it was trained) plus the tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from raylayers.config import ModelConfig
from raylayers.connectors import ConnectorSpec, build_connector
from raylayers.data import IGNORE_INDEX
from raylayers.encoders import VisionTower, load_errors, quiet_transformers
from raylayers.errors import UserError
from raylayers.layers import resolve_layers
from raylayers.tokenizer import IMAGE_TOKEN

MODEL_FILE = "raylayers_model.json"


PLAIN_HEAD_LMS = ("llama", "mistral", "qwen2", "qwen3")
"""LM types whose logits are exactly `lm_head(hidden)` (no soft-capping or scaling): their training loss can skip
the head at unsupervised positions (`LlavaLayers._supervised_loss`); others go through their own forward."""


def load_tokenizer(source: str, trust_remote_code: bool = False):
    """The LM's tokenizer, with an `<image>` token added when it has none, and a pad token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except load_errors() as err:
        raise UserError(f"cannot load the tokenizer of '{source}': {str(err).splitlines()[0][:200]}") from None
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def lm_has_weights(source: str) -> bool:
    """Whether an LM source brings weights: a hub id does; a folder only when it holds weight files."""
    folder = Path(source)
    return not folder.is_dir() or any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def load_lm(source: str, vocab_size: int, trust_remote_code: bool = False, seed: int = 0):
    """The causal LM: pretrained weights when the folder/id has them, else initialised from its config."""
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        if lm_has_weights(source):
            lm = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=trust_remote_code)
        else:
            config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
            torch.manual_seed(seed)
            lm = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (*load_errors(), SafetensorError) as err:
        raise UserError(f"cannot load the LM '{source}': {str(err).splitlines()[0][:200]}") from None
    if lm.get_input_embeddings().num_embeddings < vocab_size:
        lm.resize_token_embeddings(vocab_size)
    return lm


def _decoder_blocks(lm) -> nn.ModuleList:
    depth = lm.config.get_text_config().num_hidden_layers
    for module in lm.modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            return module
    raise UserError(f"cannot find the {depth} decoder blocks of {type(lm).__name__} (needed by internal_direct)")


def resolve_model_layers(config: ModelConfig, num_encoder_layers: int) -> list[int]:
    """The configured layers as positive numbers, checked against the encoder's depth (the one place a model's
    layer numbers are resolved); for `concat` without layers, one representative per LRS group; empty: the
    connector's default."""
    if config.layers:
        return resolve_layers(config.layers, num_encoder_layers)
    if config.connector != "concat" or not config.lrs:
        return []
    from raylayers.lrs import load_lrs

    lrs = load_lrs(config.lrs)
    if lrs["num_layers"] != num_encoder_layers:
        raise UserError(f"LRS file '{config.lrs}' is for a {lrs['num_layers']}-layer encoder, this encoder has "
                        f"{num_encoder_layers}")
    return [group["representative"] for group in lrs["groups"]]


@dataclass(frozen=True)
class ModelDims:
    """The sizes a connector is built for: the encoder's width, depth and patch grid, the LM's width and depth."""

    vision_dim: int
    num_encoder_layers: int
    grid: tuple[int, int]
    llm_dim: int
    num_llm_layers: int

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]


def patch_grid(image_size: tuple[int, int], patch_size: int | None) -> tuple[int, int]:
    """(rows, cols) of patches of an encoder input of `image_size` pixels; (0, 0) when the patch size is unknown."""
    return (image_size[0] // patch_size, image_size[1] // patch_size) if patch_size else (0, 0)


def connector_spec(name: str, layers: list[int], projector: str, options: dict, dims: ModelDims) -> ConnectorSpec:
    """The spec a model builds its connector from (layers already positive): `LlavaLayers.build` and the search's
    cost of a configuration (`raylayers.search.cost`) make it here, the same way."""
    return ConnectorSpec(name=name, vision_dim=dims.vision_dim, llm_dim=dims.llm_dim,
                         num_encoder_layers=dims.num_encoder_layers, layers=list(layers), projector=projector,
                         grid=tuple(dims.grid), num_llm_layers=dims.num_llm_layers, options=dict(options))


class LlavaLayers(nn.Module):
    """Tower + connector + LM. The tower never trains; the connector always does; the LM in stage 2."""

    def __init__(self, tower: VisionTower, connector: nn.Module, lm: nn.Module, spec: ConnectorSpec,
                 image_token_id: int, config: ModelConfig):
        super().__init__()
        # The tower is frozen and lives outside the module tree: DeepSpeed never wraps, casts, partitions or saves
        # it, and its features can come from the feature cache instead.
        object.__setattr__(self, "tower", tower)
        self.connector = connector
        self.lm = lm
        self.spec = spec
        self.image_token_id = image_token_id
        self.config = config
        self.vision_layers = type(connector).required_layers(spec.layers, spec.num_encoder_layers)
        self._additions: dict[int, torch.Tensor] = {}
        if type(connector).adds_inside_lm:
            for index, block in enumerate(_decoder_blocks(lm)):
                block.register_forward_pre_hook(self._add_hook(index), with_kwargs=True)

    # ---------------------------------------------------------------------------------------------- building
    @classmethod
    def build(cls, config: ModelConfig, tokenizer=None, seed: int = 0) -> "LlavaLayers":
        quiet_transformers()
        tower = VisionTower.from_pretrained(config.encoder, trust_remote_code=config.trust_remote_code)
        tokenizer = tokenizer or load_tokenizer(config.lm, config.trust_remote_code)
        lm = load_lm(config.lm, len(tokenizer), config.trust_remote_code, seed)
        text_config = lm.config.get_text_config()
        dims = ModelDims(vision_dim=tower.hidden_size, num_encoder_layers=tower.num_layers,
                         grid=patch_grid(tower.image_processor_size(), tower.patch_size),
                         llm_dim=text_config.hidden_size, num_llm_layers=text_config.num_hidden_layers)
        spec = connector_spec(config.connector, resolve_model_layers(config, tower.num_layers), config.projector,
                              config.connector_options, dims)
        torch.manual_seed(seed)
        connector = build_connector(spec)
        if config.gradient_checkpointing:
            lm.gradient_checkpointing_enable()
        return cls(tower, connector, lm, spec, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), config)

    def to(self, *args, **kwargs):
        self.tower.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    @property
    def num_patches(self) -> int:
        return self.spec.grid[0] * self.spec.grid[1]

    @property
    def num_image_tokens(self) -> int:
        return self.connector.num_tokens(self.num_patches)

    def parameter_counts(self) -> dict[str, int]:
        return {"connector": sum(p.numel() for p in self.connector.parameters()),
                "lm": sum(p.numel() for p in self.lm.parameters()),
                "vision_tower": sum(p.numel() for p in self.tower.parameters())}

    def metadata(self) -> dict:
        """What a run records about the model (parameter counts, visual token count, layers)."""
        return {"connector": self.spec.name, "vision_layers": self.vision_layers,
                "selected_layers": self.spec.layers, "num_image_tokens": self.num_image_tokens,
                "parameters": self.parameter_counts(), "encoder": self.config.encoder, "lm": self.config.lm}

    # ---------------------------------------------------------------------------------------------- forward
    def image_features(self, pixel_values: torch.Tensor) -> dict[int, torch.Tensor]:
        """The connector's input layers for a batch of images (frozen tower, no gradients)."""
        return self.tower(pixel_values, self.vision_layers)

    def _add_hook(self, index: int):
        def hook(module, args, kwargs):
            addition = self._additions.get(index)
            if addition is None:
                return None
            hidden = args[0] if args else kwargs["hidden_states"]
            if hidden.shape[:2] != addition.shape[:2]:  # a single-token decoding step: nothing to add
                return None
            hidden = hidden + addition.to(hidden.dtype)
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}
        return hook

    def embed(self, input_ids: torch.Tensor, features: dict[int, torch.Tensor] | None) -> torch.Tensor:
        """Token embeddings with the image tokens replaced by the connector's output."""
        embeds = self.lm.get_input_embeddings()(input_ids)  # (B, S, H)
        self._additions = {}
        mask = input_ids == self.image_token_id  # (B, S)
        if features is None:
            if mask.any():
                raise ValueError(f"{int(mask.sum())} image tokens in the batch but no image features")
            return embeds
        output = self.connector({k: v.to(embeds.dtype) for k, v in features.items()})
        visual, additions = output.tokens, output.additions
        if int(mask.sum()) != visual.shape[0] * visual.shape[1]:
            raise ValueError(f"image features {visual.shape[0] * visual.shape[1]} vs image tokens {int(mask.sum())}")
        embeds = embeds.masked_scatter(mask.unsqueeze(-1), visual.to(embeds.dtype))
        for index, addition in additions.items():  # internal_direct: dense (B, S, H) additions at image positions
            dense = torch.zeros_like(embeds).masked_scatter(mask.unsqueeze(-1), addition.to(embeds.dtype))
            self._additions[index] = dense
        return embeds

    def forward(self, input_ids, attention_mask=None, labels=None, pixel_values=None, features=None):
        if features is None and pixel_values is not None:
            features = self.image_features(pixel_values)
        embeds = self.embed(input_ids, features)
        try:
            if labels is not None and self.training and self.lm.config.model_type in PLAIN_HEAD_LMS:
                return self._supervised_loss(embeds, attention_mask, labels)
            return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, use_cache=False)
        finally:
            self._additions = {}

    def _supervised_loss(self, embeds, attention_mask, labels):
        """The LM's training loss with its output head applied only where a label is (HF applies it at every
        position, the image tokens and the prompt included, then ignores those): the same mean cross-entropy
        over the shifted labels, without the logits nobody reads. Training only; `logits` is None."""
        from transformers.modeling_outputs import CausalLMOutputWithPast

        hidden = self.lm.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask,
                                       use_cache=False).last_hidden_state
        targets = labels[:, 1:]
        kept = targets != IGNORE_INDEX
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][kept])
        loss = nn.functional.cross_entropy(logits.float(), targets[kept])
        return CausalLMOutputWithPast(loss=loss, logits=None)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, pixel_values=None, features=None, max_new_tokens=16,
                 **kwargs) -> torch.Tensor:
        """New token ids only (B, <= max_new_tokens); greedy unless sampling options are given."""
        if features is None and pixel_values is not None:
            features = self.image_features(pixel_values)
        embeds = self.embed(input_ids, features)
        kwargs.setdefault("do_sample", False)
        try:
            return self.lm.generate(inputs_embeds=embeds, attention_mask=attention_mask,
                                    max_new_tokens=max_new_tokens, **kwargs)
        finally:
            self._additions = {}

    # ---------------------------------------------------------------------------------------------- save/load
    def trainable_state(self, include_lm: bool) -> dict[str, torch.Tensor]:
        state = {f"connector.{k}": v for k, v in self.connector.state_dict().items()}
        if include_lm:
            state.update({f"lm.{k}": v for k, v in self.lm.state_dict().items()})
        return state

    def save(self, folder: str | Path, tokenizer, include_lm: bool = True) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.connector.state_dict().items()},
                  folder / "connector.safetensors")
        lm_source = self.config.lm
        if include_lm:
            self.lm.save_pretrained(folder / "lm")
            lm_source = "lm"
        tokenizer.save_pretrained(folder / "tokenizer")
        meta = {"model": {**self.config.model_dump(), "layers": self.spec.layers}, "lm_source": lm_source,
                **self.metadata()}
        (folder / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> tuple["LlavaLayers", object]:
        """A saved model and its tokenizer; a truncated or corrupt file of it is one error naming the file."""
        from raylayers.config import validate
        from raylayers.files import read_user_json

        folder = Path(folder)
        meta_path = folder / MODEL_FILE
        if not meta_path.is_file():
            raise UserError(f"'{folder}' is not a raylayers checkpoint (no {MODEL_FILE})")
        meta = read_user_json(meta_path, "checkpoint metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict) or "lm_source" not in meta:
            raise UserError(f"checkpoint metadata '{meta_path}' lacks 'model' or 'lm_source'; the checkpoint is "
                            "damaged (train it again)")
        config = validate(ModelConfig, meta["model"], f"checkpoint metadata '{meta_path}'")
        tokenizer = load_tokenizer(str(folder / "tokenizer"))
        if meta["lm_source"] == "lm":
            config.lm = str(folder / "lm")
        model = cls.build(config, tokenizer)
        try:
            model.connector.load_state_dict(read_weights(folder / "connector.safetensors"))
        except RuntimeError as err:  # names and shapes that do not fit the connector the metadata describes
            raise UserError(f"'{folder / 'connector.safetensors'}' does not fit the {config.connector} connector "
                            f"{MODEL_FILE} describes: {str(err).splitlines()[1].strip()[:200]}") from None
        return model, tokenizer


def read_weights(path: Path) -> dict:
    """A safetensors file as a state dict; missing, truncated or with a bad header: one error naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (OSError, SafetensorError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0][:200]
        raise UserError(f"cannot read the weights '{path}': {reason}") from None
