"""Helpers of the bad-input corpus: records to break, snapshots of what was on disk."""

from __future__ import annotations

import json
from pathlib import Path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under `folder` and its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(Path(folder).rglob("*"))
            if path.is_file()}


def write_records(path: Path, records) -> Path:
    path.write_text(json.dumps(records))
    return path


def record(record_id: str = "r1", image="images/x.png", question: str = "<image>\nWhat is it?",
           answer: str = "a cat") -> dict:
    return {"id": record_id, "image": image,
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}


def write_images(folder: Path, count: int, size: int = 32, seed: int = 0) -> list[Path]:
    """Random RGB PNGs img_000.png, ... in `folder`."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"img_{index:03d}.png" for index in range(count)]
    for path in paths:
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return paths
