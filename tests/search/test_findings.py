"""The study's findings on hand-made trials: group means compared with a paired bootstrap, and the verdicts."""

import pyarrow as pa
import pyarrow.parquet as pq

from raylayers.search.findings import study_findings, write_findings
from raylayers.search.results import write_results

LRS = {"num_layers": 4, "groups": [{"name": "shallow", "layers": [1, 2], "representative": 1},
                                   {"name": "deep", "layers": [3, 4], "representative": 4}]}


def trial(search, order, trial_id, layers, ocr, vision, general=0.5):
    """A completed trial whose per-question correctness is `ocr` on 200 OCR questions and `vision` on 200
    vision-centric ones (the first round(share x 200) right)."""
    folder = search / "trials" / trial_id / "eval"
    folder.mkdir(parents=True)
    rows = [{"benchmark": bench, "question_id": str(i), "category": category, "correct": float(i < share * 200)}
            for bench, category, share in (("ocr", "ocr", ocr), ("count", "vision_centric", vision),
                                           ("attributes", "general", general)) for i in range(200)]
    pq.write_table(pa.Table.from_pylist(rows), folder / "per_question.parquet")
    return {"trial_id": trial_id, "key": trial_id, "layers": layers, "connector": "mlp2x_gelu",
            "hyperparameters": "{}", "status": "completed", "steps_trained": 1, "wall_seconds": 1.0,
            "score": (ocr + vision + general) / 3, "probe_score": None, "error": None, "order": order}


def test_deep_layers_win_ocr_shallow_ones_win_vision_and_the_fusion_is_within_noise(tmp_path):
    singles, fusion = tmp_path / "singles", tmp_path / "fusion"
    write_results(singles / "results.parquet", [
        trial(singles, 0, "l1", [1], ocr=0.2, vision=0.7), trial(singles, 1, "l2", [2], ocr=0.3, vision=0.6),
        trial(singles, 2, "l3", [3], ocr=0.6, vision=0.3), trial(singles, 3, "l4", [4], ocr=0.7, vision=0.3)])
    write_results(fusion / "results.parquet", [trial(fusion, 0, "c", [1, 4], ocr=0.7, vision=0.7)])
    study = study_findings(singles, fusion, LRS)
    verdicts = {f["claim"]: f for f in study["findings"]}
    ocr = verdicts["deep layers are best for OCR"]
    assert ocr["verdict"] == "reproduced" and abs(ocr["difference"] - 0.4) < 1e-9
    assert ocr["compared"] == "deep layers (3-4) minus shallower layers (1-2)"
    vision = verdicts["shallow and middle layers are best for vision-centric tasks"]
    assert vision["verdict"] == "reproduced" and abs(vision["difference"] - 0.35) < 1e-9
    fused = verdicts["a fusion of one layer per group beats single layers"]
    assert fused["compared"].endswith("the best single layer (4)") and fused["verdict"] == "reproduced"
    assert study["per_layer"][1]["ocr"]["score"] == 0.2 and study["per_layer"][1]["ocr"]["low"] < 0.2
    path = write_findings(tmp_path / "findings", study)
    text = path.read_text()
    assert "| deep layers are best for OCR |" in text and "| concat 1+4 |" in text
    assert (tmp_path / "findings" / "categories_by_layer.png").is_file()


def test_identical_layers_are_not_separated(tmp_path):
    singles, fusion = tmp_path / "singles", tmp_path / "fusion"
    write_results(singles / "results.parquet", [trial(singles, i, f"l{i}", [i], ocr=0.5, vision=0.5)
                                                for i in range(1, 5)])
    write_results(fusion / "results.parquet", [trial(fusion, 0, "c", [1, 4], ocr=0.5, vision=0.5)])
    study = study_findings(singles, fusion, LRS)
    assert {f["verdict"] for f in study["findings"]} == {"not separated (the same score on every question)"}
    write_results(singles / "results.parquet", [trial(singles, i, f"m{i}", [i], ocr=0.5 + 0.01 * (i == 3),
                                                      vision=0.5) for i in range(1, 5)])
    ocr = study_findings(singles, fusion, LRS)["findings"][0]
    assert ocr["low"] <= 0 < ocr["high"] and ocr["verdict"] == "not separated (within noise)"


def test_a_study_without_two_completed_single_layers_is_one_line(tmp_path):
    import pytest

    from raylayers.errors import UserError

    singles, fusion = tmp_path / "singles", tmp_path / "fusion"
    write_results(singles / "results.parquet", [trial(singles, 0, "l1", [1], ocr=0.5, vision=0.5)])
    with pytest.raises(UserError, match="holds 1 completed single-layer trials; a study needs 2 or more"):
        study_findings(singles, fusion, LRS)
