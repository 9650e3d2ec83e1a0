"""The paper's three findings, tested on a study's trials: does this model and data reproduce them?

A study (`raylayers study`) trains every encoder layer alone and the concat of one layer per LRS group with the
same recipe. From the trials' per-question results (`trials/<id>/eval/per_question.parquet`):

1. "Deep layers are best for OCR": on the OCR questions, the mean correctness over the deepest group's layers minus
   the mean over the shallower groups' layers (per question, then the category score), with a paired bootstrap.
2. "Shallow and middle layers are best for vision-centric tasks": the same difference, the other way round, on the
   vision-centric questions.
3. "A fusion of one layer per group beats single layers": the concat of the representatives minus the best single
   layer (by overall score: picking the best after seeing the scores favours the single layers, so a win here is
   conservative), over every category, and minus the penultimate layer.

Group means rather than best-of-group layers: the best of eight noisy layers beats the best of four by chance.
A verdict is "reproduced" when the 95% interval lies above zero, "contradicted" when below, and "not separated"
when it straddles zero: then these questions cannot tell, which is a statement about the data's size too ("the
same score on every question" when the two sides score alike on each one, as models answering from a prior do).
"""

from __future__ import annotations

import json
from pathlib import Path

from raylayers.errors import UserError
from raylayers.evaluate.schema import CATEGORIES
from raylayers.evaluate.significance import category_interval, paired_bootstrap_sets
from raylayers.search.results import read_results

FINDINGS_FILE = "findings.json"


def _verdict(result: dict) -> str:
    if result["low"] > 0:
        return "reproduced"
    if result["high"] < 0:
        return "contradicted"
    if result["low"] == result["high"] == 0:  # every resample's difference is 0: no question tells them apart
        return "not separated (the same score on every question)"
    return "not separated (within noise)"


def _completed(search: Path) -> list[dict]:
    rows = [r for r in read_results(search / "results.parquet") if r["status"] == "completed"]
    for row in rows:
        row["per_question"] = search / "trials" / row["trial_id"] / "eval" / "per_question.parquet"
    return [r for r in rows if r["per_question"].is_file()]


def _test(claim: str, a: list[dict], b: list[dict], category: str | None, a_name: str, b_name: str) -> dict:
    result = paired_bootstrap_sets([r["per_question"] for r in a], [r["per_question"] for r in b],
                                   category=category)
    return {"claim": claim, "category": category or "all", "compared": f"{a_name} minus {b_name}",
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, "verdict": _verdict(result)}


def study_findings(singles: Path, fusion: Path, lrs: dict) -> dict:
    """Per-layer category scores with intervals, and the three findings with their bootstrap verdicts."""
    single_rows = sorted((r for r in _completed(singles) if len(r["layers"]) == 1), key=lambda r: r["layers"][0])
    fusion_rows = [r for r in _completed(fusion) if len(r["layers"]) > 1]
    if len(single_rows) < 2:
        raise UserError(f"'{singles}' holds {len(single_rows)} completed single-layer trials; a study needs 2 or "
                        "more (see its report.md for the trials that failed)")
    per_layer = {r["layers"][0]: {c: category_interval(r["per_question"], c) for c in CATEGORIES}
                 for r in single_rows}
    deep = set(lrs["groups"][-1]["layers"])
    deep_rows = [r for r in single_rows if r["layers"][0] in deep]
    shallow_rows = [r for r in single_rows if r["layers"][0] not in deep]
    findings = []
    if deep_rows and shallow_rows:
        names = ("deep layers (" + _span(deep_rows) + ")", "shallower layers (" + _span(shallow_rows) + ")")
        findings.append(_test("deep layers are best for OCR", deep_rows, shallow_rows, "ocr", *names))
        findings.append(_test("shallow and middle layers are best for vision-centric tasks", shallow_rows,
                              deep_rows, "vision_centric", names[1], names[0]))
    best_single = max(single_rows, key=lambda r: r["score"])
    penultimate = next((r for r in single_rows if r["layers"][0] == lrs["num_layers"] - 1), None)
    for row in fusion_rows:
        label = f"concat of {'+'.join(map(str, row['layers']))}"
        findings.append(_test("a fusion of one layer per group beats single layers", [row], [best_single], None,
                              label, f"the best single layer ({best_single['layers'][0]})"))
        if penultimate is not None and penultimate is not best_single:
            findings.append(_test("a fusion of one layer per group beats the penultimate layer", [row],
                                  [penultimate], None, label, f"the penultimate layer ({penultimate['layers'][0]})"))
    return {"per_layer": per_layer, "fusion": [{"layers": list(r["layers"]), "connector": r["connector"],
                                                "score": r["score"], **{c: category_interval(r["per_question"], c)
                                                                        for c in CATEGORIES}} for r in fusion_rows],
            "groups": lrs["groups"], "findings": findings}


def _span(rows: list[dict]) -> str:
    layers = sorted(r["layers"][0] for r in rows)
    return f"{layers[0]}-{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1)) else ",".join(
        map(str, layers))


def write_findings(out: Path, study: dict) -> Path:
    """findings.json, findings.md (the table, per-layer scores with intervals) and the Fig. 1b plot."""
    from raylayers.plots import plot_category_lines

    out.mkdir(parents=True, exist_ok=True)
    (out / FINDINGS_FILE).write_text(json.dumps(study, indent=2, default=str) + "\n")
    per_layer = {layer: {c: v["score"] for c, v in cats.items() if v["score"] is not None}
                 for layer, cats in study["per_layer"].items()}
    bands = {layer: {c: (v["low"], v["high"]) for c, v in cats.items() if v["score"] is not None}
             for layer, cats in study["per_layer"].items()}
    fusion = study["fusion"][0] if study["fusion"] else None
    references = {c: fusion[c]["score"] for c in CATEGORIES} if fusion else None
    plot_category_lines(per_layer, out / "categories_by_layer.png", "Score per category over layers (95% intervals)",
                        bands=bands, references=references,
                        reference_label=f"concat {'+'.join(map(str, fusion['layers']))}" if fusion else "")
    lines = ["# Study findings", "", "| finding | compared | category | difference | 95% interval | verdict |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {f['claim']} | {f['compared']} | {f['category']} | {f['difference']:+.4f} | "
              f"{f['low']:+.4f} to {f['high']:+.4f} | {f['verdict']} |" for f in study["findings"]]
    lines += ["", "![scores by layer](categories_by_layer.png)", "", "| layer | " + " | ".join(CATEGORIES) + " |",
              "|---" * (len(CATEGORIES) + 1) + "|"]
    for layer, cats in sorted(study["per_layer"].items()):
        lines.append(f"| {layer} | " + " | ".join(_cell(cats[c]) for c in CATEGORIES) + " |")
    for row in study["fusion"]:
        lines.append(f"| concat {'+'.join(map(str, row['layers']))} | " + " | ".join(_cell(row[c]) for c in CATEGORIES)
                     + " |")
    (out / "findings.md").write_text("\n".join(lines) + "\n")
    return out / "findings.md"


def _cell(value: dict) -> str:
    if value["score"] is None:
        return "-"
    return f"{value['score']:.3f} ({value['low']:.3f}-{value['high']:.3f})"
