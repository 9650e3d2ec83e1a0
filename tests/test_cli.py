"""The command line as a user meets it: every subcommand parses, the pipeline runs, mistakes are one line."""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raylayers.cli import build_parser, main
from raylayers.search.results import read_results

# ARCHITECTURE.md's command list, all of them
COMMANDS = ["world", "pretrain-encoder", "pretrain-world", "lrs", "train", "eval", "search", "export", "demo", "study",
            "config-schema"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: raylayers" in capsys.readouterr().out


def test_parser_knows_exactly_the_documented_commands():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(subparsers.choices) == sorted(COMMANDS)


def test_config_schema_documents_every_key(capsys, tmp_path):
    assert main(["config-schema", "train"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "TrainConfig" and set(schema["required"]) == {"model", "data"}
    assert schema["$defs"]["ModelConfig"]["properties"]["encoder"]["description"].startswith("Vision encoder")
    assert schema["$defs"]["StageConfig"]["properties"]["template"]["enum"] == ["plain", "chat"]
    assert main(["config-schema", "search", "--out", str(tmp_path / "search.json")]) == 0
    search = json.loads((tmp_path / "search.json").read_text())
    for whole in (schema, search):
        for definition in (whole, *whole["$defs"].values()):
            for key, field in definition["properties"].items():  # a docstring per field: the schema's description
                section = whole["$defs"].get(field.get("$ref", "").rpartition("/")[2], {})
                assert field.get("description") or section.get("description"), (definition["title"], key)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """world (tiny) -> pretrain-encoder -> lrs, through main(), once for the module."""
    root = tmp_path_factory.mktemp("pipeline")
    assert main(["world", "--out", str(root / "world"), "--scale", "tiny", "--seed", "1"]) == 0
    assert main(["pretrain-encoder", "--world", str(root / "world"), "--out", str(root / "encoder")]) == 0
    assert main(["lrs", "--encoder", str(root / "encoder"), "--images", str(root / "world" / "images"),
                 "--out", str(root / "lrs")]) == 0
    return root


@pytest.mark.slow
def test_pipeline_writes_a_real_checkpoint_and_lrs(pipeline):
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, CLIPModel

    from raylayers.encoders import VisionTower

    encoder = pipeline / "encoder"
    assert isinstance(CLIPModel.from_pretrained(encoder), CLIPModel)
    AutoImageProcessor.from_pretrained(encoder)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    assert tokenizer.decode(tokenizer("How many circles are there? 12", add_special_tokens=False)["input_ids"]) \
        == "How many circles are there? 12"
    lm = AutoConfig.from_pretrained(encoder / "lm")
    assert lm.model_type == "llama" and lm.vocab_size == len(tokenizer)
    tower = VisionTower.from_pretrained(encoder)
    report = json.loads((encoder / "pretrain.json").read_text())
    assert report["steps"] > 0 and 0.0 <= report["retrieval"]["top1"] <= 1.0
    lrs = json.loads((pipeline / "lrs" / "lrs.json").read_text())
    assert lrs["num_layers"] == tower.num_layers
    layers = [layer for group in lrs["groups"] for layer in group["layers"]]
    assert layers == list(range(1, tower.num_layers + 1))
    assert (pipeline / "lrs" / "lrs.png").stat().st_size > 1000


@pytest.mark.slow
def test_lrs_reads_each_source_kind(pipeline, tmp_path):
    world = pipeline / "world"
    for name, source in {"json": world / "stage1.json", "bench": world / "bench" / "count"}.items():
        out = tmp_path / name
        assert main(["lrs", "--encoder", str(pipeline / "encoder"), "--images", str(source), "--out", str(out),
                     "--groups", "2", "--metric", "cka"]) == 0
        data = json.loads((out / "lrs.json").read_text())
        assert data["metric"] == "cka" and len(data["groups"]) == 2 and data["num_images"] >= 4


def _one_line_error(capsys, argv, *fragments):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.slow
def test_bad_input_is_one_clear_line(pipeline, capsys, tmp_path):
    encoder, images = str(pipeline / "encoder"), str(pipeline / "world" / "images")
    out = str(tmp_path / "out")
    _one_line_error(capsys, ["lrs", "--encoder", str(tmp_path / "missing"), "--images", images, "--out", out],
                    "cannot load encoder", "missing")
    _one_line_error(capsys, ["lrs", "--encoder", encoder, "--images", images, "--out", out, "--groups", "0"],
                    "--groups must be at least 1")
    _one_line_error(capsys, ["lrs", "--encoder", encoder, "--images", images, "--out", out, "--groups", "99"],
                    "--groups 99", "4 layers")
    bad = tmp_path / "bad_images"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.txt").write_text("hello")
    _one_line_error(capsys, ["lrs", "--encoder", encoder, "--images", str(bad), "--out", out],
                    "none of the 2 files")
    _one_line_error(capsys, ["pretrain-encoder", "--world", str(tmp_path), "--out", out], "not a world folder")
    with pytest.raises(SystemExit) as info:
        main(["world", "--out", out, "--scale", "huge"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_skipped_images_are_reported_and_counted(pipeline, capsys, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(pipeline / "world" / "images", mixed)
    (mixed / "corrupt.png").write_bytes(b"\x89PNG broken")
    (mixed / "empty.png").write_bytes(b"")
    assert main(["lrs", "--encoder", str(pipeline / "encoder"), "--images", str(mixed),
                 "--out", str(tmp_path / "out"), "--groups", "2"]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped 2 image(s)" in captured.err
    assert json.loads((tmp_path / "out" / "lrs.json").read_text())["num_skipped"] == 2


ROOT = Path(__file__).resolve().parents[1]
TINY_DEMO = ["--scale", "tiny", "--trials", "2", "--encoder-steps", "10"]  # listed in `raylayers demo --help`


def readme_main_command() -> str:
    """The main-job command of the README's "Two commands", as printed."""
    section = (ROOT / "README.md").read_text().split("## Two commands", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return next(line for line in block.splitlines() if "raylayers demo" in line and not line.startswith("#"))


def repository_root_copy(tmp_path) -> Path:
    """A folder laid out like the repository root where the README's commands run: its `.venv` (the one running the
    tests) and `search_spaces/`. The demo's default output, `runs/demo`, lands inside it and not in the checkout."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".venv").symlink_to(Path(sys.prefix))
    shutil.copytree(ROOT / "search_spaces", root / "search_spaces")
    return root


def run_readme_demo(root: Path, *extra: str) -> subprocess.CompletedProcess:
    """The README's main command, literally (its last step; the set-up steps are what CI runs), plus tiny flags."""
    demo = readme_main_command().split("&&")[-1].strip()
    assert demo == ".venv/bin/raylayers demo", demo
    return subprocess.run([*shlex.split(demo), *TINY_DEMO, *extra], cwd=root, capture_output=True, text=True,
                          timeout=1200)


@pytest.mark.slow
def test_the_readmes_main_command_completes_the_demo_with_its_default_relative_output(tmp_path):
    root = repository_root_copy(tmp_path)
    result = run_readme_demo(root)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    said = result.stdout
    assert "search finished in" in said and "2 completed, 0 stopped early, 0 failed" in said, said[-3000:]
    assert "\nbest: layers [" in said and "\npenultimate-layer baseline [3]: score" in said, said[-3000:]
    assert "demo finished in" in said.strip().splitlines()[-1]
    search = root / "runs" / "demo" / "search"  # the default --out, relative to where the command ran
    rows = read_results(search / "results.parquet")
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    assert all(isinstance(r["image_reliance"], float) for r in rows)  # per answer, each trial's last probe
    summary = json.loads((search / "search_summary.json").read_text())
    assert summary["image_reliance_min"] == min(r["image_reliance"] for r in rows)
    assert (search / "best_config.yaml").is_file() and (search / "report.md").is_file()
    assert (root / "runs" / "demo" / "lrs" / "lrs.png").is_file()


@pytest.mark.slow
def test_a_demo_whose_search_fails_exits_non_zero_and_does_not_say_finished(tmp_path):
    """Every trial fails (a file stands where the demo keeps its feature cache): the demo stops at the search with
    its one error line and a non-zero exit, keeps what it wrote, and never says it finished."""
    root = repository_root_copy(tmp_path)
    (root / "runs" / "demo").mkdir(parents=True)
    (root / "runs" / "demo" / "cache").write_text("not a folder")
    result = run_readme_demo(root, "--trials", "1")
    assert result.returncode == 2, (result.stdout[-3000:], result.stderr[-3000:])
    assert "demo finished" not in result.stdout and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("raylayers search: error: 0 of 1 trials completed; first error (trial "), last
    assert "cache" in last, last
    assert len(read_results(root / "runs" / "demo" / "search" / "results.parquet")) == 1
    assert (root / "runs" / "demo" / "lrs" / "lrs.json").is_file()  # the steps before the search are kept


@pytest.mark.slow
def test_ctrl_c_during_the_demo_says_how_to_resume_and_the_resume_finishes_it(tmp_path):
    """Ctrl-C (SIGINT to the process group) while the demo's first trial trains: exit 130 and the demo's own line
    (not its search step's) with the command that resumes it; `--resume` keeps the world, encoder and LRS, resumes
    the search and finishes the demo."""
    import os
    import signal
    import time

    import psutil

    root = repository_root_copy(tmp_path)
    demo = [*shlex.split(readme_main_command().split("&&")[-1].strip()), *TINY_DEMO]
    driver = subprocess.Popen(demo, cwd=root, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    trials = root / "runs" / "demo" / "search" / "trials"
    deadline = time.time() + 600
    while time.time() < deadline and not list(trials.glob("*/ray/*/stage1-step*")):
        time.sleep(0.2)
    children = psutil.Process(driver.pid).children(recursive=True)
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=180)
    assert driver.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last == (f"raylayers demo: interrupted (SIGINT); what is done is kept in {root / 'runs' / 'demo'}; "
                    f"resume with: raylayers {shlex.join(['demo', *TINY_DEMO, '--resume'])}"), err[-3000:]
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, [p.cmdline()[:3] for p in alive]
    result = subprocess.run([*demo, "--resume"], cwd=root, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    said = result.stdout
    assert "[demo 1/4] world" in said and "kept: " in said and "--resume" in said, said[-3000:]
    assert "2 completed, 0 stopped early, 0 failed" in said and "demo finished in" in said, said[-3000:]
    assert len(read_results(root / "runs" / "demo" / "search" / "results.parquet")) == 2
