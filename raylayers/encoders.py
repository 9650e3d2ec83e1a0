"""Layer access for any transformers vision tower: ask for layer numbers, get only those, stop after the deepest.

`VisionTower.from_pretrained` takes a local folder or a hub id (offline: the hub cache only) of
- a vision model (CLIPVisionModel, SiglipVisionModel, Dinov2Model, ...),
- a full image-text model whose config has a `vision_config` (CLIP, SigLIP): only its vision part is loaded,
- any other model whose forward takes `pixel_values` and returns `hidden_states`.
The image processor comes from the same checkpoint.

How layers are read (in the spirit of open_clip's `forward_intermediates`): forward hooks on the transformer blocks
copy out the selected blocks' outputs, and the hook of the deepest selected block stops the forward pass, so no
deeper block runs and no unselected layer is kept. Where no block list can be found, the tower falls back to
`output_hidden_states=True` and keeps the selected entries.

Prefix tokens (CLS, DINOv2 registers) are found from the model, not from a flag: the number of patch tokens follows
from the pixel grid and the patch size, and whatever precedes them is a prefix (CLIP: 1, DINOv2: 1 + registers,
SigLIP: 0).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from raylayers.errors import UserError
from raylayers.layers import resolve_layers


def load_errors() -> tuple[type[Exception], ...]:
    """What transformers raises for a checkpoint it cannot read: missing or unreadable files, bad values, and
    (transformers 5) a config field of the wrong type, such as a string where `num_hidden_layers` needs a number."""
    from huggingface_hub.errors import StrictDataclassError

    return OSError, ValueError, KeyError, TypeError, StrictDataclassError


class EncoderLoadError(UserError):
    """The encoder (or its image processor) cannot be loaded."""


class _StopForward(Exception):
    """Raised by the deepest selected block's hook to end the forward pass early."""


def quiet_transformers() -> None:
    """Silence transformers' load reports and progress bars; our CLI prints its own, one line per fact."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


# Full image-text checkpoints whose vision part has its own class; for these we load only the vision weights.
_VISION_CLASS_BY_MODEL_TYPE = {
    "clip": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
    "siglip2": "Siglip2VisionModel",
}


def load_encoder_config(name_or_path: str, trust_remote_code: bool = False):
    """The encoder checkpoint's transformers config, or one `EncoderLoadError` line saying why not."""
    from transformers import AutoConfig

    local = Path(name_or_path).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise EncoderLoadError(f"encoder folder '{name_or_path}' has no config.json")
    try:
        config = AutoConfig.from_pretrained(str(local) if local.exists() else name_or_path,
                                            trust_remote_code=trust_remote_code)
    except load_errors() as err:
        where = "is not a folder, and the hub id is not in the local cache (no network)"
        if local.exists():
            where = "could not be read"
        text = " ".join(str(err).split())
        raise EncoderLoadError(f"cannot load encoder '{name_or_path}': it {where} ({text[:200] or type(err).__name__})"
                               ) from None
    depth = getattr(getattr(config, "vision_config", None) or config, "num_hidden_layers", None)
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 1):
        raise EncoderLoadError(f"encoder '{name_or_path}': its config's num_hidden_layers must be a positive integer, "
                               f"got {depth!r}")
    return config


def _find_blocks(model: nn.Module, num_layers: int) -> nn.ModuleList | None:
    """The ModuleList of transformer blocks: the longest list of identical modules with `num_layers` entries."""
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            if len({type(block) for block in module}) == 1:
                return module
    return None


class VisionTower(nn.Module):
    """A frozen vision encoder that returns selected layers' token features.

    Attributes:
        model: the transformers vision model (eval mode, no gradients).
        image_processor: the checkpoint's image processor.
        name: where it was loaded from (written into lrs.json and run metadata).
        num_layers: L, the number of transformer blocks.
        hidden_size: channel width of the layers.
        patch_size: the model's patch size (pixels), or None when the config has none.
    """

    def __init__(self, model: nn.Module, image_processor=None, name: str = "encoder"):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.image_processor = image_processor
        self.name = name
        config = model.config
        self.num_layers = int(config.num_hidden_layers)
        self.hidden_size = int(getattr(config, "hidden_size", 0) or 0)
        patch = getattr(config, "patch_size", None)
        self.patch_size = int(patch[0] if isinstance(patch, (list, tuple)) else patch) if patch else None
        self._blocks = _find_blocks(model, self.num_layers)

    # ---------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, trust_remote_code: bool = False,
                        dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                        load_processor: bool = True) -> "VisionTower":
        """Load a vision tower and its image processor from a local path or an (offline-cached) hub id."""
        import transformers
        from safetensors import SafetensorError
        from transformers import AutoImageProcessor, AutoModel

        quiet_transformers()
        name = str(name_or_path)
        config = load_encoder_config(name, trust_remote_code)
        source = str(Path(name).expanduser()) if Path(name).expanduser().exists() else name
        kwargs = {"trust_remote_code": trust_remote_code}
        if dtype is not None:
            kwargs["dtype"] = dtype
        vision_class = _VISION_CLASS_BY_MODEL_TYPE.get(config.model_type)
        try:
            if vision_class is not None:
                model = getattr(transformers, vision_class).from_pretrained(source, **kwargs)
            else:
                model = AutoModel.from_pretrained(source, **kwargs)
                for attribute in ("vision_model", "vision_tower"):  # image-text models without a vision class
                    if hasattr(model, attribute) and not hasattr(model.config, "num_hidden_layers"):
                        model = getattr(model, attribute)
        except (*load_errors(), RuntimeError, SafetensorError) as err:
            first_line = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise EncoderLoadError(f"cannot load encoder weights from '{name}': {first_line}") from None
        if not hasattr(model.config, "num_hidden_layers"):
            raise EncoderLoadError(f"'{name}' ({type(model).__name__}) is not a layered vision model "
                                   "(its config has no num_hidden_layers)")
        processor = None
        if load_processor:
            try:
                with _quiet_stdio_warnings():
                    processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
            except (OSError, ValueError, KeyError) as err:
                first_line = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
                raise EncoderLoadError(f"cannot load the image processor of '{name}': {first_line}") from None
        tower = cls(model, processor, name=name)
        if device is not None:
            tower.to(device)
        return tower

    # ---------------------------------------------------------------------------------------------- inputs
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def preprocess(self, images: Sequence) -> torch.Tensor:
        """PIL images -> pixel_values (B, 3, H, W) with the checkpoint's own preprocessing."""
        if self.image_processor is None:
            raise EncoderLoadError(f"encoder '{self.name}' was loaded without an image processor")
        rgb = [image.convert("RGB") for image in images]
        return self.image_processor(images=rgb, return_tensors="pt")["pixel_values"]

    def resolve(self, layers: Sequence[int]) -> list[int]:
        """Layer numbers (negative allowed) -> positive numbers, checked against the depth."""
        return resolve_layers(layers, self.num_layers)

    def image_processor_size(self) -> tuple[int, int]:
        """(height, width) of the pixel_values the tower is fed: the model's image_size, else the processor's."""
        size = getattr(self.model.config, "image_size", None)
        if size:
            return (size, size) if isinstance(size, int) else tuple(size)
        crop = getattr(self.image_processor, "crop_size", None) or getattr(self.image_processor, "size", None) or {}
        if "height" in crop:
            return int(crop["height"]), int(crop["width"])
        raise EncoderLoadError(f"cannot tell the input size of encoder '{self.name}'")

    def fingerprint(self) -> str:
        """Identity of encoder weights + preprocessing, for the feature cache (changes when either changes)."""
        import hashlib
        import json as _json

        digest = hashlib.blake2b(digest_size=12)
        digest.update(_json.dumps(self.model.config.to_dict(), sort_keys=True, default=str).encode())
        if self.image_processor is not None:
            digest.update(_json.dumps(self.image_processor.to_dict(), sort_keys=True, default=str).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()

    def num_patches(self, pixel_values: torch.Tensor) -> int | None:
        if self.patch_size is None:
            return None
        height, width = pixel_values.shape[-2:]
        return (height // self.patch_size) * (width // self.patch_size)

    # ---------------------------------------------------------------------------------------------- forward
    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor, layers: Sequence[int], patch_only: bool = True
                ) -> dict[int, torch.Tensor]:
        """Selected layers' features, {positive layer number: (B, T, D)}.

        With `patch_only`, prefix tokens (CLS, registers) are dropped, leaving the patch tokens.
        """
        wanted = self.resolve(layers)
        pixel_values = pixel_values.to(device=self.device, dtype=self.dtype)
        if self._blocks is None:
            outputs = self.model(pixel_values=pixel_values, output_hidden_states=True)
            features = {layer: outputs.hidden_states[layer] for layer in wanted}
        else:
            features = self._forward_with_hooks(pixel_values, wanted)
        if patch_only:
            patches = self.num_patches(pixel_values)
            for layer, hidden in features.items():
                prefix = hidden.shape[1] - patches if patches is not None else 0
                if prefix < 0:
                    raise RuntimeError(f"layer {layer} has {hidden.shape[1]} tokens, fewer than the {patches} "
                                       f"patches of a {tuple(pixel_values.shape[-2:])} image")
                features[layer] = hidden[:, prefix:]
        return {layer: features[layer] for layer in wanted}

    def _forward_with_hooks(self, pixel_values: torch.Tensor, wanted: list[int]) -> dict[int, torch.Tensor]:
        features: dict[int, torch.Tensor] = {}
        deepest = max(wanted)
        handles = []

        def keep_input(module, args, kwargs):  # hidden_states[0]: what enters block 1
            features[0] = args[0] if args else kwargs["hidden_states"]
            if deepest == 0:
                raise _StopForward

        def keep_output(layer):
            def hook(module, args, output):
                features[layer] = output[0] if isinstance(output, (tuple, list)) else output
                if layer == deepest:
                    raise _StopForward
            return hook

        if 0 in wanted:
            handles.append(self._blocks[0].register_forward_pre_hook(keep_input, with_kwargs=True))
        for layer in wanted:
            if layer > 0:
                handles.append(self._blocks[layer - 1].register_forward_hook(keep_output(layer)))
        try:
            self.model(pixel_values=pixel_values)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return features


@contextlib.contextmanager
def _quiet_stdio_warnings():
    """transformers warns through `warnings` and logging that a PIL fallback processor is used; that is expected."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
