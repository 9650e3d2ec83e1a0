"""`--bench hf:DATASET[:CONFIG[:SPLIT]]`: benchmarks loaded offline through `datasets`, from a local dataset folder,
the hub cache or datasets' own cache, and imported like a parquet download."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest
from importer_sources import png

from raylayers.cli import main
from raylayers.errors import UserError
from raylayers.evaluate.bench import load_benchmark, resolve_benchmarks
from raylayers.paths import resolve_bench

datasets = pytest.importorskip("datasets")

CARD = """---
configs:
- config_name: default
  data_files:
  - split: test
    path: data/test-*
- config_name: both
  data_files:
  - split: test
    path: data/test-*
  - split: val
    path: val/val-*
---
# a tiny POPE look-alike
"""
SHA = "0123456789abcdef0123456789abcdef01234567"


def _pope_rows():
    return {"id": ["0", "1", "2"], "question_id": ["1", "1", "2"],
            "question": ["Is there a dog in the image?", "Is there a dog in the image?", "Is there a kite?"],
            "answer": ["yes", "yes", "no"], "image_source": ["COCO_1", "COCO_1", "COCO_2"],
            "image": [{"bytes": png(16), "path": None}, {"bytes": png(16), "path": None},
                      {"bytes": png(17), "path": None}],
            "category": ["adversarial", "popular", "random"]}


def write_dataset_folder(root):
    """A dataset folder as the hub serves it: parquet shards written by `datasets` (image feature, its schema
    metadata) under data/ and val/, and a README.md whose YAML front matter declares the configs."""
    features = datasets.Features({name: datasets.Value("string") for name in _pope_rows()} |
                                 {"image": datasets.Image()})
    table = datasets.Dataset.from_dict(_pope_rows(), features=features)
    (root / "data").mkdir(parents=True)
    (root / "val").mkdir()
    table.select([0, 1]).to_parquet(str(root / "data" / "test-00000-of-00002.parquet"))
    table.select([2]).to_parquet(str(root / "data" / "test-00001-of-00002.parquet"))
    table.select([2]).to_parquet(str(root / "val" / "val-00000-of-00001.parquet"))
    (root / "README.md").write_text(CARD, encoding="utf-8")
    return root


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty Hugging Face home for the test, and no cache variables of the user's."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE",
                 "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return tmp_path / "hf-home"


def test_a_local_dataset_folder_imports_as_its_layout(tmp_path, hf_home):
    source = write_dataset_folder(tmp_path / "pope-download")
    [folder] = resolve_benchmarks(f"hf:{source}", tmp_path / "eval")
    assert folder == tmp_path / "eval" / "bench" / "pope"
    bench = load_benchmark(folder)
    assert [row["question_id"] for row in bench.rows] == ["adversarial-1", "popular-1", "random-2"]
    assert [row["answer"] for row in bench.rows] == ["yes", "yes", "no"]
    assert bench.rows[2]["image"] == png(17)  # the encoded bytes, copied as they were
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["source"] == f"hf:{source}" and meta["files"] == ["default/test"] and meta["metric"] == "pope"
    assert not [p for p in (tmp_path / "eval" / "bench").iterdir() if p.name.startswith(".")]  # staging removed
    assert "HF_HUB_OFFLINE" not in os.environ and "HF_DATASETS_OFFLINE" not in os.environ  # restored


def test_config_and_split_are_chosen_and_a_relative_folder_resolved(tmp_path, hf_home, monkeypatch):
    write_dataset_folder(tmp_path / "pope-download")
    monkeypatch.chdir(tmp_path)
    spec = resolve_bench("hf:./pope-download:both:val")
    assert spec == f"hf:{tmp_path / 'pope-download'}:both:val"
    [folder] = resolve_benchmarks(spec, tmp_path / "eval")
    assert [row["question_id"] for row in load_benchmark(folder).rows] == ["random-2"]
    assert json.loads((folder / "meta.json").read_text())["files"] == ["both/val"]
    with pytest.raises(UserError, match=r"has splits test, val; name one"):
        resolve_benchmarks(f"hf:{tmp_path / 'pope-download'}:both", tmp_path / "eval2")
    with pytest.raises(UserError, match=r"config nope\).*'nope' not found"):
        resolve_benchmarks(f"hf:{tmp_path / 'pope-download'}:nope:test", tmp_path / "eval2")


def test_hub_ids_stay_ids_and_bad_specs_are_one_line(tmp_path):
    assert resolve_bench("hf:lmms-lab/MMBench:en:dev,count") == "hf:lmms-lab/MMBench:en:dev,count"
    for spec, message in [("hf:", "expected hf:DATASET"), ("hf:a/b:c:d:e", "expected hf:DATASET"),
                          ("hf:not a/valid id", "neither a local folder nor a hub dataset id")]:
        with pytest.raises(UserError, match=message):
            resolve_benchmarks(spec, tmp_path / "eval")


def test_a_dataset_in_the_hub_cache_loads_offline(tmp_path, hf_home):
    """What `hf download --repo-type dataset lmms-lab/POPE` leaves: a snapshot under the hub cache and its ref."""
    repo = hf_home / "hub" / "datasets--lmms-lab--POPE"
    write_dataset_folder(repo / "snapshots" / SHA)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    [folder] = resolve_benchmarks("hf:lmms-lab/POPE::test", tmp_path / "eval")
    assert len(load_benchmark(folder).rows) == 3
    assert json.loads((folder / "meta.json").read_text())["source"] == "hf:lmms-lab/POPE::test"


def test_a_dataset_in_the_datasets_cache_loads_offline(tmp_path, hf_home):
    """What lmms-eval leaves: datasets' Arrow cache under `<owner>___<name>/<config>/<version>/<hash>/`. Made here by
    loading a folder named like the dataset and filing its cache entry under the hub id's name."""
    source = write_dataset_folder(tmp_path / "pope")
    datasets.load_dataset(str(source), split="test", cache_dir=str(hf_home / "datasets"))
    [entry] = (hf_home / "datasets" / "pope" / "default").glob("*/*/")
    target = hf_home / "datasets" / "lmms-lab___pope" / "default" / entry.parent.name / entry.name
    shutil.copytree(entry, target)  # its Arrow files are named pope-<split>.arrow, as for lmms-lab/POPE
    [folder] = resolve_benchmarks("hf:lmms-lab/POPE", tmp_path / "eval")
    assert [row["answer"] for row in load_benchmark(folder).rows] == ["yes", "yes", "no"]


def test_a_missing_dataset_is_one_line_naming_it(tmp_path, hf_home, capsys):
    with pytest.raises(UserError, match=r"dataset 'lmms-lab/MME' is not in the Hugging Face cache"):
        resolve_benchmarks("hf:lmms-lab/MME", tmp_path / "eval")
    predictions = tmp_path / "answers.jsonl"
    predictions.write_text('{"question_id": "1", "prediction": "yes"}\n')
    code = main(["eval", "--predictions", str(predictions), "--bench", "hf:lmms-lab/MME", "--out",
                 str(tmp_path / "eval")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "lmms-lab/MME" in err and "offline" in err


def test_plain_parquet_folders_still_import(tmp_path):
    source = write_dataset_folder(tmp_path / "pope-download")
    [folder] = resolve_benchmarks(str(source / "data"), tmp_path / "eval")
    assert len(pq.read_table(folder / "questions.parquet")) == 3
