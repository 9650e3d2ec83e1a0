"""Benchmarks from the Hugging Face cache: `--bench hf:DATASET[:CONFIG[:SPLIT]]`, loaded offline through `datasets`
and imported like a parquet download.

Who ran lmms-eval already has its benchmarks in the Hugging Face cache. The spec:

    hf:lmms-lab/POPE                  the dataset's default config and its only split
    hf:lmms-lab/MMBench:en:dev        config `en`, split `dev`
    hf:lmms-lab/POPE::test            default config, split `test`
    hf:lmms-lab/GQA:testdev_balanced_instructions+testdev_balanced_images:testdev
                                      several configs (`+`) imported together: GQA's questions and images
    hf:/data/pope  or  hf:./pope      a local dataset folder as `datasets` reads it (parquet files, a README.md
                                      dataset card with its `configs:`), e.g. from `hf download --local-dir`

DATASET is a hub id or a local folder (the folder wins when both exist, as in `datasets`); it holds no `:`. A split
must be named when the config has several. Nothing is downloaded: the load runs with HF_HUB_OFFLINE=1 and
HF_DATASETS_OFFLINE=1, first from `datasets`' own cache (`$HF_DATASETS_CACHE`, what lmms-eval leaves), then from
the hub cache's snapshot of the dataset (`$HF_HUB_CACHE`, what `hf download` leaves); both default under
`$HF_HOME` (~/.cache/huggingface) and are read when the benchmark is loaded. A dataset in neither is one line
naming it.

The loaded table (per config) is written, a batch at a time with its image bytes embedded, as one parquet file in a
hidden staging folder beside the import, and imported from there by `import_benchmark`. The layout is the one
whose hub id the dataset is (`lmms-lab/POPE` -> pope), else recognised from the columns (`detect_layout`). Its
meta.json says `source` (the spec) and `files` (`<config>/<split>` read).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from raylayers.errors import UserError
from raylayers.evaluate.importers.detect import detect_layout
from raylayers.evaluate.importers.layouts import LAYOUTS
from raylayers.evaluate.importers.writer import READ_BATCH_ROWS, import_benchmark
from raylayers.paths import could_be_hub_id, resolve_local

HF_PREFIX = "hf:"
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass(frozen=True)
class HubSpec:
    """An `hf:` benchmark spec, read: the dataset (a hub id or an absolute local folder), its configs (None: the
    default one) and the split (None: the only one)."""

    text: str
    dataset: str
    configs: tuple[str | None, ...]
    split: str | None

    @property
    def local(self) -> bool:
        return os.path.isabs(self.dataset)


def is_hub_spec(value: str) -> bool:
    return str(value).strip().startswith(HF_PREFIX)


def parse_hub_spec(text: str) -> HubSpec:
    """`hf:DATASET[:CONFIG[+CONFIG...][:SPLIT]]` read; a relative local folder is made absolute. One-line
    UserErrors for a spec that cannot name a dataset."""
    parts = text.strip()[len(HF_PREFIX):].split(":")
    if len(parts) > 3 or not parts[0]:
        raise UserError(f"--bench '{text}': expected hf:DATASET[:CONFIG[:SPLIT]] (e.g. hf:lmms-lab/POPE or "
                        "hf:lmms-lab/MMBench:en:dev)")
    dataset, config, split = (parts + ["", ""])[:3]
    if dataset.startswith((".", "~", os.sep)) or os.path.isdir(os.path.expanduser(dataset)):
        dataset = resolve_local(dataset)
        if not os.path.isdir(dataset):
            raise UserError(f"--bench '{text}': no dataset folder '{dataset}'")
    elif not could_be_hub_id(dataset):
        raise UserError(f"--bench '{text}': '{dataset}' is neither a local folder nor a hub dataset id (owner/name)")
    configs = tuple(name or None for name in config.split("+")) if config else (None,)
    if len(configs) > 1 and None in configs:
        raise UserError(f"--bench '{text}': an empty config name among '{config}'")
    return HubSpec(text=text.strip(), dataset=dataset, configs=configs, split=split or None)


def cache_dirs() -> tuple[str, str]:
    """(the hub cache, datasets' cache) as the environment names them now."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    data = os.environ.get("HF_DATASETS_CACHE") or os.path.join(home, "datasets")
    return os.path.expanduser(hub), os.path.expanduser(data)


@contextmanager
def offline() -> Iterator[None]:
    """HF_HUB_OFFLINE and HF_DATASETS_OFFLINE on, in the environment and in the libraries that read them at import,
    for the duration; everything restored after."""
    import datasets.config
    import huggingface_hub.constants

    saved_env = {name: os.environ.get(name) for name in _OFFLINE_ENV}
    flags = [(datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE"),
             (huggingface_hub.constants, "HF_HUB_OFFLINE")]
    saved = [(module, name, getattr(module, name)) for module, name in flags if hasattr(module, name)]
    os.environ.update({name: "1" for name in _OFFLINE_ENV})
    for module, name, _ in saved:
        setattr(module, name, True)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _hub_snapshot(repo_id: str, hub_cache: str) -> str | None:
    """The hub cache's snapshot folder of a dataset (its `main`), or None when the cache has none."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, repo_type="dataset", local_files_only=True, cache_dir=hub_cache)
    except Exception:  # noqa: BLE001 (LocalEntryNotFoundError and friends: not in the cache)
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _load_offline(spec: HubSpec, config: str | None):
    """`load_dataset` offline: from datasets' cache, else from the hub cache's snapshot; one-line UserErrors."""
    from datasets import load_dataset

    hub_cache, data_cache = cache_dirs()
    what = f"--bench '{spec.text}'"
    with offline():
        try:
            try:
                return load_dataset(spec.dataset, name=config, split=spec.split, cache_dir=data_cache)
            except (ConnectionError, FileNotFoundError) as err:  # not in datasets' cache: the hub cache's snapshot?
                if spec.local:
                    raise UserError(f"{what}: {_first_line(err)}") from None
                snapshot = _hub_snapshot(spec.dataset, hub_cache)
                if snapshot is None:
                    raise UserError(f"{what}: dataset '{spec.dataset}' is not in the Hugging Face cache "
                                    f"({data_cache}, {hub_cache}) and raylayers loads offline; download it first "
                                    f"(hf download --repo-type dataset {spec.dataset})") from None
                return load_dataset(snapshot, name=config, split=spec.split, cache_dir=data_cache)
        except UserError:
            raise
        except (ValueError, OSError, ConnectionError, KeyError) as err:  # unknown config or split, bad files
            raise UserError(f"{what}: cannot load dataset '{spec.dataset}' (config {config or 'default'}): "
                            f"{_first_line(err)}") from None


def _load_split(spec: HubSpec, config: str | None):
    """(split name, `datasets.Dataset`) of one config; the only split when the spec names none."""
    loaded = _load_offline(spec, config)
    if spec.split is None and hasattr(loaded, "keys"):  # a DatasetDict: take its only split
        splits = list(loaded.keys())
        if len(splits) != 1:
            raise UserError(f"--bench '{spec.text}': dataset '{spec.dataset}' has splits {', '.join(splits)}; "
                            "name one (hf:DATASET:CONFIG:SPLIT)")
        return splits[0], loaded[splits[0]]
    return spec.split, loaded


def _write_parquet(dataset, path: Path) -> None:
    """The dataset's rows as a parquet file, a batch at a time, images (and other files) embedded as bytes."""
    import pyarrow.parquet as pq
    from datasets.table import embed_table_storage

    table_schema = dataset.features.arrow_schema
    with pq.ParquetWriter(path, table_schema) as writer:
        for batch in dataset.with_format("arrow").iter(batch_size=READ_BATCH_ROWS):
            writer.write_table(embed_table_storage(batch.cast(table_schema)))


def _layout_for(spec: HubSpec, staging: Path) -> str:
    by_dataset = {layout.dataset.lower(): name for name, layout in LAYOUTS.items()}
    if not spec.local and spec.dataset.lower() in by_dataset:
        return by_dataset[spec.dataset.lower()]
    layout = detect_layout(staging)
    if layout is None:
        columns = sorted({name for path in staging.glob("*.parquet") for name in _columns(path)})
        raise UserError(f"--bench '{spec.text}': its columns ({', '.join(columns)}) fit no known benchmark "
                        f"layout, or several equally ({', '.join(sorted(LAYOUTS))})")
    return layout


def _columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def import_hub_benchmark(text: str, bench_root: str | Path) -> Path:
    """Load the `hf:` spec offline and import it into `bench_root/<layout>/`; returns that folder."""
    spec = parse_hub_spec(text)
    loaded = [(config, *_load_split(spec, config)) for config in spec.configs]
    bench_root = Path(bench_root)
    bench_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".hf-", dir=bench_root) as staging:
        staging = Path(staging)
        for config, split, dataset in loaded:
            _write_parquet(dataset, staging / f"{config or 'default'}-{split}.parquet")
        layout = _layout_for(spec, staging)
        target = bench_root / layout
        print(f"[raylayers] importing {layout} from {spec.text} ({len(loaded)} table(s), "
              f"{sum(len(d) for _, _, d in loaded)} rows) into {target}", flush=True)
        try:
            meta = import_benchmark(staging, target, layout=layout)
        except UserError as err:
            raise UserError(f"--bench '{spec.text}': {str(err).replace(str(staging), spec.dataset)}") from None
    meta.update(source=spec.text, files=[f"{config or 'default'}/{split}" for config, split, _ in loaded])
    (target / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return target
