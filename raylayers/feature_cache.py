"""The frozen-feature cache: each image's selected layers, computed once, reused across epochs, stages and runs.

The tower is frozen, so its output for an image depends only on (encoder weights, preprocessing, layer, image
bytes). The cache is keyed by exactly that:

    <cache dir>/<encoder fingerprint>/layer_<k>/shard_<uuid>.safetensors   features (n, N, D) float16 + row keys
    <cache dir>/<encoder fingerprint>/layer_<k>/index.jsonl                image hash -> shard, row

The fingerprint hashes the encoder config, its weights and its image processor settings; the image key hashes the
file's bytes. Shards are append-only and named uniquely, and index lines are appended under a file lock, so
workers and concurrent trials can fill one cache safely. Reads memory-map the shards (safetensors `safe_open`).
Written by hand: no maintained library caches per-layer transformer activations keyed like this.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import uuid
from pathlib import Path

import torch

DEFAULT_CACHE_DIR = Path(os.environ.get("RAYLAYERS_CACHE", Path.home() / ".cache" / "raylayers")) / "features"


def image_key(source: str | bytes) -> str:
    """Content hash of an image file (or its bytes): the same picture at another path hits the cache."""
    if not isinstance(source, (bytes, bytearray)) and not stat.S_ISREG(os.stat(source).st_mode):
        raise OSError(f"'{source}' is not a regular file")  # opening a FIFO would block until someone writes
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class FeatureCache:
    """Per-layer features of one encoder (identified by its fingerprint)."""

    def __init__(self, root: str | Path | None, fingerprint: str):
        self.root = Path(root or DEFAULT_CACHE_DIR) / fingerprint
        self._index: dict[int, dict[str, tuple[str, int]]] = {}
        self._open: dict[Path, object] = {}

    def _layer_dir(self, layer: int) -> Path:
        return self.root / f"layer_{layer}"

    def index(self, layer: int, refresh: bool = False) -> dict[str, tuple[str, int]]:
        if refresh or layer not in self._index:
            entries: dict[str, tuple[str, int]] = {}
            path = self._layer_dir(layer) / "index.jsonl"
            if path.exists():
                for line in path.read_text().splitlines():
                    if line.strip():
                        entry = json.loads(line)
                        entries[entry["key"]] = (entry["shard"], entry["row"])
            self._index[layer] = entries
        return self._index[layer]

    def missing(self, layers: list[int], keys: list[str]) -> list[str]:
        """Image keys that lack at least one of the layers."""
        indexes = [self.index(layer, refresh=True) for layer in layers]
        return [key for key in dict.fromkeys(keys) if any(key not in index for index in indexes)]

    def write(self, features: dict[int, torch.Tensor], keys: list[str]) -> None:
        """Append one shard per layer: features[layer] is (n, N, D) for the n images `keys`."""
        for layer, tensor in features.items():
            from safetensors.torch import save_file

            folder = self._layer_dir(layer)
            folder.mkdir(parents=True, exist_ok=True)
            shard = f"shard_{uuid.uuid4().hex}.safetensors"
            save_file({"features": tensor.detach().to(torch.float16).contiguous().cpu()}, folder / shard)
            lines = "".join(json.dumps({"key": key, "shard": shard, "row": row}) + "\n"
                            for row, key in enumerate(keys))
            with open(folder / "index.jsonl", "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.write(lines)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, layers: list[int], keys: list[str]) -> dict[int, torch.Tensor]:
        """{layer: (len(keys), N, D) float32} for cached images."""
        from safetensors import safe_open

        result = {}
        for layer in layers:
            index = self.index(layer)
            rows = []
            for key in keys:
                shard, row = index[key]
                path = self._layer_dir(layer) / shard
                handle = self._open.get(path)
                if handle is None:
                    handle = self._open[path] = safe_open(str(path), framework="pt")
                rows.append(handle.get_slice("features")[row:row + 1])
            result[layer] = torch.cat(rows).float()
        return result
