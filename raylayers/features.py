"""Image features of the frozen vision tower: the one path from images to selected-layer features.

- `tower_features(tower, images, layers)`: the checkpoint's preprocessing, then the tower's selected layers. LRS,
  training and evaluation all call it.
- `ImageFeatures`: features for a model's samples or benchmark rows, from the frozen-feature cache
  (`raylayers.feature_cache`) when there is one, else from the tower on the fly. Images are opened by
  `raylayers.image_source.open_image`, so a missing, empty or corrupt file gets the same reason everywhere.

With the cache on, `prepare` hashes each distinct image (the cache key) and runs the tower once for the images not
cached yet; training then reads features from the cache. With it off, `prepare` only checks each image's structure
(no pixel decode, no hash) and training decodes it when its batch comes.
"""

from __future__ import annotations

from collections import Counter

import torch

from raylayers import timings
from raylayers.image_source import ImageRef, check_image, file_problem, open_image


@torch.no_grad()
def tower_features(tower, images: list, layers: list[int], device: torch.device | None = None
                   ) -> dict[int, torch.Tensor]:
    """{layer: (B, N, D)} patch features of PIL `images` at the tower's selected (positive) `layers`."""
    pixels = tower.preprocess(images)  # (B, 3, H, W)
    return tower(pixels.to(device) if device is not None else pixels, layers)


class ImageFeatures:
    """Selected-layer features for samples (`Sample`, or anything with `id`, `image` and `image_key`).

    `prepare` runs once per data file on every rank: it looks at each distinct image once (each rank a share),
    drops samples whose image is missing, empty or corrupt (counted by reason; all ranks agree), and with the cache
    on stores the features of images not cached yet.
    """

    def __init__(self, model, cache=None, rank: int = 0, world_size: int = 1, device: torch.device | None = None):
        self.model, self.cache, self.rank, self.world_size = model, cache, rank, world_size
        self.device = device or torch.device("cpu")
        self.skipped: Counter = Counter()

    # ---------------------------------------------------------------------------------------------- preparing
    def prepare(self, samples: list, batch_size: int = 32) -> list:
        """The samples whose image can be used (or that have none); the others are counted in `skipped`."""
        from raylayers.feature_cache import image_key

        sources: dict[str, str | bytes] = {}
        unreadable: dict[str, str] = {}
        for sample in samples:
            if sample.image is None:
                continue
            is_bytes = isinstance(sample.image, (bytes, bytearray))
            problem = None if is_bytes else file_problem(sample.image)  # before hashing: a FIFO would block
            if problem:
                unreadable[sample.id] = problem
                continue
            try:  # the cache needs the content; without it, the path itself names the image
                hashed = self.cache is not None or is_bytes
                sample.image_key = image_key(sample.image) if hashed else str(sample.image)
                sources.setdefault(sample.image_key, sample.image)
            except OSError as err:
                unreadable[sample.id] = "permission denied" if isinstance(err, PermissionError) else "unreadable"
        bad = self._check_images(sources, batch_size)
        kept = []
        for sample in samples:
            reason = unreadable.get(sample.id) or bad.get(sample.image_key)
            if sample.image is not None and reason:
                self.skipped[reason] += 1
            else:
                kept.append(sample)
        return kept

    def _check_images(self, sources: dict[str, str | bytes], batch_size: int) -> dict[str, str]:
        """{key: reason} of the unusable images among this rank's share (gathered from every rank); with the cache
        on, the features of the usable ones not cached yet are written."""
        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized()
        keys = list(sources)
        if self.cache is not None:
            keys = [self.cache.missing(self.model.vision_layers, keys)]
            if distributed:  # rank 0's view, before anyone writes: every rank splits the same list
                dist.broadcast_object_list(keys, src=0)
            keys = keys[0]
        mine = keys[self.rank::self.world_size]
        if self.cache is not None:
            with timings.adding("feature pre-pass"):  # the tower's forward for images not cached yet
                bad = self._fill_cache(mine, sources, batch_size)
        else:
            bad = {key: reason for key in mine if (reason := check_image(ImageRef.of(key, sources[key])))}
        if distributed:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, bad)
            bad = {key: reason for part in gathered for key, reason in part.items()}
        if self.cache is not None:  # the other ranks' shards are written now (all_gather was the barrier)
            for layer in self.model.vision_layers:
                self.cache.index(layer, refresh=True)
        return bad

    def _fill_cache(self, keys: list[str], sources: dict, batch_size: int) -> dict[str, str]:
        bad: dict[str, str] = {}
        for start in range(0, len(keys), batch_size):
            good_keys, images = [], []
            for key in keys[start:start + batch_size]:
                image, reason = open_image(ImageRef.of(key, sources[key]))
                if image is None:
                    bad[key] = reason
                else:
                    good_keys.append(key)
                    images.append(image)
            if images:
                self.cache.write(tower_features(self.model.tower, images, self.model.vision_layers, self.device),
                                 good_keys)
        return bad

    # ---------------------------------------------------------------------------------------------- reading
    def get(self, samples: list) -> dict[int, torch.Tensor] | None:
        """{layer: (B_img, N, D)} for the samples that have an image, in order; None when none has."""
        with_image = [s for s in samples if s.image is not None]
        if not with_image:
            return None
        if self.cache is not None:
            features = self.cache.read(self.model.vision_layers, [s.image_key for s in with_image])
            return {layer: value.to(self.device) for layer, value in features.items()}
        images = []
        for sample in with_image:
            image, reason = open_image(ImageRef.of(sample.id, sample.image))
            if image is None:  # vanished or broken after the check: a black image keeps the batch shape; counted
                self.skipped[f"{reason} during training"] += 1
                from PIL import Image

                image = Image.new("RGB", self.model.tower.image_processor_size()[::-1])
            images.append(image)
        return tower_features(self.model.tower, images, self.model.vision_layers, self.device)

    def of_sources(self, sources: list) -> tuple[dict[int, torch.Tensor] | None, list[str | None]]:
        """Features of the images that open among `sources` (paths, bytes or None), and per source None or why it
        could not be used (evaluation: a row keeps its place and gets an empty answer)."""
        images, errors = [], []
        for index, source in enumerate(sources):
            image, reason = (None, "missing") if source is None else open_image(ImageRef.of(str(index), source))
            if image is not None:
                images.append(image)
            errors.append(None if image is not None else f"image {reason}")
        if not images:
            return None, errors
        return tower_features(self.model.tower, images, self.model.vision_layers, self.device), errors
