"""Encoded training samples, tokenized once and reused by every later run and search trial that reads them alike.

Encoding a data file (chat-template rendering and tokenization of every turn) cost about 2 s per stage-2 file of
the demo world in every trial, the same 2 s each time: the token ids of a record depend only on the file's bytes,
the tokenizer, the template, the image-token id and count, `max_length`, `max_records` and the image folder. The
cache is keyed by exactly those:

    <cache dir>/samples/<key>.parquet    id, input_ids, labels, image_path | image_bytes; truncated in the metadata

next to the frozen-feature cache (`cache.dir`, the same switch `cache.enabled`). A file is written whole under a
temporary name and renamed, so concurrent trials never read half of one; one that cannot be read is encoded again
and replaced. Written by hand: `datasets.map` caches by fingerprint too, but it would load the file through
`datasets` and pickle the tokenizer per call, and our records and their validation are ours (`data.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from raylayers.data import ConversationEncoder, Sample, encode_samples

FORMAT = 1  # bump when the encoding of a record changes


def tokenizer_fingerprint(tokenizer) -> str | None:
    """A hash of everything about a (fast) tokenizer that changes token ids; None for a slow tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    parts = [type(tokenizer).__name__, backend.to_str(), getattr(tokenizer, "chat_template", None) or "",
             str(tokenizer.bos_token_id), str(tokenizer.eos_token), str(tokenizer.pad_token_id)]
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


def cache_key(data_file: str | Path, encoder: ConversationEncoder, max_records: int | None,
              image_folder: str | Path | None) -> str | None:
    """The key of a data file's encoded samples, or None when they cannot be cached (a slow tokenizer)."""
    fingerprint = tokenizer_fingerprint(encoder.tokenizer)
    if fingerprint is None:
        return None
    data = hashlib.blake2b(Path(data_file).read_bytes(), digest_size=16).hexdigest()
    parts = [FORMAT, data, str(Path(data_file).resolve().parent), fingerprint, encoder.template,
             encoder.image_token_id, encoder.num_image_tokens, encoder.max_length, max_records,
             str(image_folder) if image_folder else None]
    return hashlib.blake2b(json.dumps(parts).encode(), digest_size=16).hexdigest()


def encode_samples_cached(data_file: str | Path, encoder: ConversationEncoder, max_records: int | None,
                          image_folder: str | Path | None, cache_dir: str | Path | None) -> list[Sample]:
    """`data.encode_samples`, through the cache in `cache_dir/samples` (None: no cache). `encoder.truncated`
    counts the file's cut samples either way."""
    key = cache_key(data_file, encoder, max_records, image_folder) if cache_dir is not None else None
    if key is None:
        return encode_samples(data_file, encoder, max_records, image_folder)
    path = Path(cache_dir) / "samples" / f"{key}.parquet"
    cached = _read(path)
    if cached is not None:
        samples, truncated = cached
        encoder.truncated += truncated
        return samples
    before = encoder.truncated
    samples = encode_samples(data_file, encoder, max_records, image_folder)
    _write(path, samples, encoder.truncated - before)
    return samples


def _write(path: Path, samples: list[Sample], truncated: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "id": [s.id for s in samples],
        "input_ids": pa.array([s.input_ids for s in samples], pa.list_(pa.int32())),
        "labels": pa.array([s.labels for s in samples], pa.list_(pa.int32())),
        "image_path": [s.image if isinstance(s.image, str) else None for s in samples],
        "image_bytes": pa.array([bytes(s.image) if isinstance(s.image, (bytes, bytearray)) else None
                                 for s in samples], pa.binary()),
    }).replace_schema_metadata({"raylayers_truncated": str(truncated)})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def _read(path: Path) -> tuple[list[Sample], int] | None:
    """The cached samples and their truncated count; None when there is no readable file."""
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        truncated = int(table.schema.metadata[b"raylayers_truncated"])
        ids, paths, blobs = (table.column(name).to_pylist() for name in ("id", "image_path", "image_bytes"))
        input_ids, labels = (_lists(table.column(name)) for name in ("input_ids", "labels"))
    except Exception:  # noqa: BLE001 (a damaged cache file of any kind: encode again and replace it)
        return None
    return [Sample(i, x, y, p if p is not None else b) for i, x, y, p, b in
            zip(ids, input_ids, labels, paths, blobs)], truncated


def _lists(column) -> list[list[int]]:
    """A list<int32> column as Python lists, through one flat conversion (much faster than `to_pylist`)."""
    array = column.combine_chunks()
    values, offsets = array.values.to_numpy().tolist(), array.offsets.to_numpy().tolist()
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(array))]
