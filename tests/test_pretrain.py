import json
import math

import pytest

from raylayers.config import PRESETS, pretrain_config
from raylayers.errors import UserError
from raylayers.pretrain import lr_schedule, pretrain_encoder
from raylayers.world import build_world


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    build_world(folder, seed=3, scale="tiny", progress=False)
    return folder


def test_pretraining_lowers_the_loss_and_reports_retrieval(tiny_world, tmp_path):
    config = pretrain_config("tiny", epochs=6)
    report = pretrain_encoder(tiny_world, tmp_path / "enc", config=config, progress=False, log=lambda _: None)
    curve = report["loss_curve"]
    assert report["steps"] == 6 * (48 // config.batch_size)
    assert sum(curve[-3:]) / 3 < sum(curve[:3]) / 3
    retrieval = report["retrieval"]
    assert retrieval["num_images"] == 16 and 0 < retrieval["chance"] <= 1
    assert json.loads((tmp_path / "enc" / "pretrain.json").read_text())["steps"] == report["steps"]
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
                 "lm/config.json", "lm/tokenizer.json"):
        assert (tmp_path / "enc" / name).is_file(), name


def test_unknown_setting_is_named():
    with pytest.raises(UserError, match="unknown key 'bogus' in pretrain settings"):
        pretrain_config("tiny", bogus=1)
    with pytest.raises(UserError, match="'epochs' in pretrain settings: input should be greater than 0"):
        pretrain_config("tiny", epochs=0)


def test_the_schedule_ignores_the_clock_only_under_a_step_budget():
    timed = lr_schedule(pretrain_config("demo", max_seconds=200.0), planned=920, total_steps=920)
    stepped = lr_schedule(pretrain_config("demo", max_steps=200), planned=920, total_steps=200)
    assert timed(100, 150.0) < timed(100, 1.0)  # a time budget decays with the clock
    assert stepped(100, 150.0) == stepped(100, 1.0) == stepped(100, 1e6)
    peak = PRESETS["demo"].learning_rate
    cosine = lambda step: 0.5 * (1 + math.cos(math.pi * step / 200))  # noqa: E731
    assert stepped(22, 0.0) == pytest.approx(peak * 23 / 46 * cosine(22))  # the planned 46-step warm-up, kept
    assert stepped(60, 0.0) == pytest.approx(peak * cosine(60))
    assert stepped(199, 0.0) < 1e-3 * stepped(100, 0.0)  # decayed to nearly nothing at the last step


def test_a_step_budget_stops_there_and_two_runs_give_the_same_weights(tiny_world, tmp_path):
    from safetensors.torch import load_file

    config = pretrain_config("tiny", epochs=6, max_steps=5)
    reports = [pretrain_encoder(tiny_world, tmp_path / name, config=config, progress=False, log=lambda _: None)
               for name in ("a", "b")]
    assert [r["steps"] for r in reports] == [5, 5] and not reports[0]["stopped_by_time_budget"]
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert all(a[key].equal(b[key]) for key in a)


def test_pretrain_world_writes_an_lm_that_loads_and_a_card_whose_checksums_guard_it(tiny_world, tmp_path, capsys,
                                                                                     monkeypatch):
    from transformers import AutoModelForCausalLM

    from raylayers.cli import main
    from raylayers.pretrain import world as bundles

    out = tmp_path / "bundle"
    assert main(["pretrain-world", "--world", str(tiny_world), "--out", str(out), "--encoder-steps", "3",
                 "--lm-steps", "4"]) == 0
    said = capsys.readouterr().out
    assert "bundle written to" in said and "LM text-QA accuracy" in said and "vs prior" in said
    card = json.loads((out / "card.json").read_text())
    assert card["encoder"]["steps"] == 3 and card["lm"]["steps"] == 4
    assert card["world"] == {"scale": "tiny", "seed": 3, "image_size": 32}
    assert set(card["lm"]["text_qa"]) >= {"overall", "ocr", "pope"} and "answer_prior" in card["lm"]["text_qa"]["ocr"]
    assert {"model.safetensors", "lm/model.safetensors", "lm/tokenizer.json", "pretrain.json"} <= set(card["sha256"])
    AutoModelForCausalLM.from_pretrained(out / "lm")  # the weights load as a published LM's would

    monkeypatch.setattr(bundles, "SHIPPED", tmp_path)
    assert bundles.shipped_bundle("bundle") == out
    (out / "lm" / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(UserError, match=r"lm/model.safetensors' is missing or does not match its checksum"):
        bundles.shipped_bundle("bundle")
    with pytest.raises(UserError, match="no shipped bundle for the 'full' world scale"):
        bundles.shipped_bundle("full")


def test_text_qa_accuracy_counts_an_answer_only_when_every_token_is_right_and_reports_the_prior():
    import torch

    from raylayers.pretrain import text_qa_accuracy

    class Echo(torch.nn.Module):  # predicts token 7 everywhere
        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, 10)
            logits[..., 7] = 1.0
            return type("Out", (), {"logits": logits})()

    heldout = [("a", [1, 2], [7, 7]), ("a", [1, 2], [7, 3]), ("a", [1], [7, 7]), ("b", [4], [5])]
    report = text_qa_accuracy(Echo(), heldout, pad_id=0)
    assert report["a"] == {"accuracy": round(2 / 3, 4), "questions": 3, "answer_prior": round(2 / 3, 4)}
    assert report["b"]["accuracy"] == 0.0 and report["overall"] == {"accuracy": 0.5, "questions": 4}


def test_the_lm_is_trained_on_every_token_of_its_text_or_on_the_answers_alone(tiny_world, tmp_path):
    import shutil

    import torch
    from transformers import AutoTokenizer

    from raylayers.data import IGNORE_INDEX
    from raylayers.pretrain.lm import TextCorpus, lm_loss, pad_rows

    pretrain_encoder(tiny_world, tmp_path / "enc", config=pretrain_config("tiny", max_steps=1), progress=False,
                     log=lambda _: None)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "enc" / "lm")
    corpus = TextCorpus(tokenizer, "tiny", 0, copy_fraction=0.3, direct_fraction=0.0)
    rows = [corpus.sample(index) for index in range(20)]
    for ids, labels in rows:
        supervised = [position for position, label in enumerate(labels) if label != IGNORE_INDEX]
        assert 0 < len(supervised) <= len(ids) // 2  # a copy record: the caption twice, the second supervised
        assert all(labels[position] == ids[position] for position in supervised)
    batch = pad_rows(rows, tokenizer.pad_token_id)
    logits = torch.randn(*batch["input_ids"].shape, len(tokenizer))
    every = pad_rows([(ids, [IGNORE_INDEX] + ids[1:]) for ids, _ in rows], tokenizer.pad_token_id)
    loss = torch.nn.functional.cross_entropy  # by hand: the answers alone, then every token after the first
    for name, labels in (("answers", batch["labels"]), ("text", every["labels"])):
        expected = loss(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX)
        assert lm_loss(logits, batch, name).item() == pytest.approx(expected.item(), rel=1e-5)

    from raylayers.config import pretrain_lm_config
    from raylayers.pretrain import pretrain_lm

    first_loss = {}  # the same weights and first batch: "both" adds the whole text's mean to the answers' mean
    for loss_on in ("answers", "both", "text"):
        lm = tmp_path / loss_on
        shutil.copytree(tmp_path / "enc", lm)
        config = pretrain_lm_config("tiny", steps=2, drill_steps=0, eval_every=2, loss_on=loss_on)
        report = pretrain_lm(lm, "tiny", config, progress=False, log=lambda _: None)
        assert report["finished"] and report["config"]["loss_on"] == loss_on
        first_loss[loss_on] = report["loss_curve"][0]
    assert first_loss["both"] == pytest.approx(first_loss["answers"] + first_loss["text"], abs=2e-4)


def test_drills_lead_the_run_then_keep_their_share_of_each_batch_and_are_scored_apart(tiny_world, tmp_path):
    from transformers import AutoTokenizer

    from raylayers.config import pretrain_lm_config
    from raylayers.pretrain import pretrain_lm
    from raylayers.pretrain.lm import TextCorpus, _batch_rows

    pretrain_encoder(tiny_world, tmp_path / "enc", config=pretrain_config("tiny", max_steps=1), progress=False,
                     log=lambda _: None)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "enc" / "lm")
    corpus = TextCorpus(tokenizer, "tiny", 0, copy_fraction=0.3, direct_fraction=0.0)
    config = pretrain_lm_config("tiny", batch_size=8, drill_steps=2, drill_fraction=0.25, length_group_steps=1)

    def drills(step: int) -> int:
        return sum(tokenizer.decode(ids).count("It is ") for ids, _ in _batch_rows(corpus, config, step))

    assert [drills(step) for step in (0, 1, 2, 3)] == [8, 8, 2, 2]
    assert _batch_rows(corpus, config, 2) != _batch_rows(corpus, config, 3)
    fresh = TextCorpus(tokenizer, "tiny", 0, copy_fraction=0.3, direct_fraction=0.0)  # a resumed run's batches
    assert _batch_rows(fresh, config, 3) == _batch_rows(corpus, config, 3)
    more = config.model_copy(update={"drill_fraction": 0.5})  # another config on the same corpus: its own rows
    assert sum(tokenizer.decode(ids).count("It is ") for ids, _ in _batch_rows(corpus, more, 3)) == 4
    report = pretrain_lm(tmp_path / "enc", "tiny", config.model_copy(update={"steps": 3, "eval_every": 3}),
                         progress=False, log=lambda _: None)
    drill = report["text_qa"]["drill"]
    assert drill["questions"] == 200 and 0.0 <= drill["accuracy"] <= 1.0
    assert report["text_qa"]["overall"]["questions"] == sum(  # the drills are not pooled into the text-QA figure
        s["questions"] for task, s in report["text_qa"].items() if task not in ("overall", "drill"))


def test_a_group_of_steps_trains_on_the_records_its_steps_drew_batched_by_length(tiny_world, tmp_path):
    from transformers import AutoTokenizer

    from raylayers.config import pretrain_lm_config
    from raylayers.pretrain.lm import TextCorpus, _batch_rows, _drawn_rows, pad_rows

    pretrain_encoder(tiny_world, tmp_path / "enc", config=pretrain_config("tiny", max_steps=1), progress=False,
                     log=lambda _: None)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "enc" / "lm")
    corpus = TextCorpus(tokenizer, "tiny", 0, copy_fraction=0.3, direct_fraction=0.0)
    grouped, plain = (pretrain_lm_config("tiny", batch_size=8, drill_steps=3, drill_fraction=0.25,
                                         length_group_steps=steps) for steps in (4, 1))
    for group in (0, 1):  # the second group's steps are past the drills
        steps = range(4 * group, 4 * group + 4)
        batches = [_batch_rows(corpus, grouped, step) for step in steps]
        drawn = [row for step in steps for row in _drawn_rows(corpus, plain, step)]
        assert all(len(batch) == 8 for batch in batches)
        assert sorted(row for batch in batches for row in batch) == sorted(drawn)
        lengths = [len(ids) for batch in batches for ids, _ in batch]
        assert lengths == sorted(lengths, reverse=True)
        padded = sum(pad_rows(batch, tokenizer.pad_token_id)["input_ids"].numel() for batch in batches)
        assert padded < sum(pad_rows(_batch_rows(corpus, plain, step), tokenizer.pad_token_id)["input_ids"].numel()
                            for step in steps)


def test_the_text_loss_covers_every_real_token_after_the_first_and_no_padding():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from raylayers.data import IGNORE_INDEX
    from raylayers.pretrain.lm import _text_loss, pad_rows

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=0))
    rows = [([1, 5, 6, 7, 8, 9], [IGNORE_INDEX] * 4 + [8, 9]), ([1, 4, 3], [IGNORE_INDEX] * 2 + [3])]  # 3 pads
    batch = pad_rows(rows, pad_id=0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    every_token = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
    expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=every_token).loss
    assert _text_loss(logits, batch["input_ids"], batch["attention_mask"]).item() == pytest.approx(expected.item())


def test_an_lm_run_cut_by_its_time_cap_resumes_to_the_same_weights_as_an_uninterrupted_one(tiny_world, tmp_path):
    import shutil

    from safetensors.torch import load_file

    from raylayers.config import pretrain_lm_config
    from raylayers.pretrain import pretrain_lm

    encoder = tmp_path / "enc"
    pretrain_encoder(tiny_world, encoder, config=pretrain_config("tiny", max_steps=2), progress=False,
                     log=lambda _: None)
    shutil.copytree(encoder, tmp_path / "whole")
    config = pretrain_lm_config("tiny", steps=4, eval_every=2)
    quiet = dict(progress=False, log=lambda _: None)
    cut = pretrain_lm(encoder, "tiny", config.model_copy(update={"max_seconds": 1e-9}), **quiet)
    assert cut["steps"] == 1 and not cut["finished"] and (encoder / "lm" / "pretrain_lm_state.pt").is_file()
    assert not (encoder / "lm" / "model.safetensors").exists()  # nothing half-trained passes for an LM
    with pytest.raises(UserError, match="other settings \\(batch_size\\)"):
        pretrain_lm(encoder, "tiny", config.model_copy(update={"batch_size": 4}), **quiet)
    resumed = pretrain_lm(encoder, "tiny", config, **quiet)
    whole = pretrain_lm(tmp_path / "whole", "tiny", config, **quiet)
    assert resumed["steps"] == whole["steps"] == 4 and resumed["finished"]
    assert not (encoder / "lm" / "pretrain_lm_state.pt").exists()
    a, b = (load_file(folder / "lm" / "model.safetensors") for folder in (encoder, tmp_path / "whole"))
    assert all(a[key].equal(b[key]) for key in a)


def test_the_demo_and_the_study_copy_a_shipped_bundle_for_their_encoder_step(tiny_world, tmp_path, monkeypatch):
    from argparse import Namespace

    from raylayers.cli import main
    from raylayers.demo import base_steps
    from raylayers.pretrain import world as bundles

    shipped = tmp_path / "bundles"
    assert main(["pretrain-world", "--world", str(tiny_world), "--out", str(shipped / "tiny"), "--encoder-steps", "2",
                 "--lm-steps", "2"]) == 0
    monkeypatch.setattr(bundles, "SHIPPED", shipped)
    out = tmp_path / "run"
    args = Namespace(scale="tiny", seed=0, encoder_steps=None, encoder_seconds=None)
    name, shown, action = base_steps(args, out, run_command=lambda argv: 1)[1]
    assert name == "encoder" and "shipped tiny bundle" in shown
    assert action() == 0 and (out / "encoder" / "lm" / "model.safetensors").is_file()
    assert (out / "encoder" / "card.json").read_bytes() == (shipped / "tiny" / "card.json").read_bytes()
    fresh = base_steps(Namespace(scale="tiny", seed=0, encoder_steps=5, encoder_seconds=None), out, lambda argv: 0)
    assert fresh[1][1].startswith("raylayers pretrain-encoder") and "--max-steps 5" in fresh[1][1]
    assert base_steps(Namespace(scale="demo", seed=0, encoder_steps=None, encoder_seconds=None), out,
                      lambda argv: 0)[1][1].startswith("raylayers pretrain-encoder")  # no bundle for that scale here


def test_a_share_of_the_drills_are_scene_drills_spread_evenly_over_the_indices(tiny_world, tmp_path):
    from transformers import AutoTokenizer

    from raylayers.pretrain.lm import TextCorpus
    from raylayers.world.text import scene_drill_record

    pretrain_encoder(tiny_world, tmp_path / "enc", config=pretrain_config("tiny", max_steps=1), progress=False,
                     log=lambda _: None)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "enc" / "lm")
    half = TextCorpus(tokenizer, "tiny", 0, copy_fraction=0.3, direct_fraction=0.0, scene_drill_share=0.5)
    none = TextCorpus(tokenizer, "tiny", 0, copy_fraction=0.3, direct_fraction=0.0)
    scene = [index for index in range(200) if "It is " not in tokenizer.decode(half.sample(index, drill=True)[0])]
    assert 95 <= len(scene) <= 105 and 40 <= sum(index < 100 for index in scene) <= 60
    assert all("It is " in tokenizer.decode(none.sample(index, drill=True)[0]) for index in scene[:20])
    record = scene_drill_record(0, half.scale, scene[0], half.stats)
    assert half.sample(scene[0], drill=True) == half.encoder.encode(record["conversations"])
    assert half.sample(scene[0]) == none.sample(scene[0])  # text records are untouched


def test_an_lm_run_can_start_from_an_earlier_runs_weights_and_refuses_ones_it_cannot_read(tiny_world, tmp_path,
                                                                                          capsys):
    import shutil

    from safetensors.torch import load_file

    from raylayers.cli import main
    from raylayers.config import pretrain_lm_config
    from raylayers.pretrain import pretrain_lm
    from raylayers.pretrain.lm import _load

    first = tmp_path / "first"
    assert main(["pretrain-world", "--world", str(tiny_world), "--out", str(first), "--encoder-steps", "2",
                 "--lm-steps", "3"]) == 0
    trained = load_file(first / "lm" / "model.safetensors")
    _, started = _load(first / "lm", seed=1, init_from=str(first / "lm"))
    assert all(started.state_dict()[key].equal(value) for key, value in trained.items())
    _, fresh = _load(first / "lm", seed=1)
    assert not all(fresh.state_dict()[key].equal(value) for key, value in trained.items())

    second = tmp_path / "second"
    shutil.copytree(first, second)
    (second / "lm" / "model.safetensors").unlink()
    report = pretrain_lm(second, "tiny", pretrain_lm_config("tiny", steps=2, init_from=str(first / "lm")),
                         progress=False, log=lambda _: None)
    assert report["finished"] and report["config"]["init_from"] == str(first / "lm")
    assert set(load_file(second / "lm" / "model.safetensors")) == set(trained)

    capsys.readouterr()
    assert main(["pretrain-world", "--world", str(tiny_world), "--out", str(tmp_path / "third"), "--encoder-steps",
                 "2", "--lm-steps", "2", "--lm-from", str(tmp_path / "nowhere")]) == 2
    assert "holds no LM weights" in capsys.readouterr().err
    assert not (tmp_path / "third").exists()  # refused before the encoder was trained
    other = tmp_path / "other"
    shutil.copytree(first / "lm", other)
    (other / "tokenizer.json").write_text((other / "tokenizer.json").read_text().replace('"<image>"', '"<picture>"'))
    with pytest.raises(UserError, match="has another tokenizer"):
        _load(first / "lm", seed=1, init_from=str(other))
    deeper = tmp_path / "deeper"
    shutil.copytree(first / "lm", deeper)
    config = json.loads((deeper / "config.json").read_text())
    (deeper / "config.json").write_text(json.dumps(config | {"num_hidden_layers": config["num_hidden_layers"] + 1}))
    with pytest.raises(UserError, match=r"another architecture .*\(num_hidden_layers\)"):
        _load(first / "lm", seed=1, init_from=str(deeper))


def test_a_cards_rebuild_commands_replay_its_lm_chain_to_the_same_weights(tiny_world, tmp_path, capsys):
    import shlex

    from safetensors.torch import load_file

    from raylayers.cli import main

    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["pretrain-world", "--world", str(tiny_world), "--out", str(first), "--encoder-steps", "2",
                 "--lm-set", "steps=3", "--lm-set", "drill_fraction=0.5", "--lm-set", "eval_every=2"]) == 0
    assert main(["pretrain-world", "--world", str(tiny_world), "--out", str(second), "--encoder-steps", "2",
                 "--lm-steps", "2", "--lm-from", str(first / "lm"), "--lm-set", "loss_on=text"]) == 0
    card = json.loads((second / "card.json").read_text())
    lineage = json.loads((second / "lm" / "pretrain_lm.json").read_text())["lineage"]
    assert [run["config"]["drill_fraction"] for run in lineage] == [0.5] and lineage[0]["steps"] == 3
    commands = card["rebuild"]
    assert commands[0] == "raylayers world --out WORLD --scale tiny --seed 3" and len(commands) == 3
    assert "--lm-set drill_fraction=0.5 --lm-set eval_every=2" in commands[1] and "--lm-from" not in commands[1]
    assert commands[2].endswith("--lm-from BUNDLE_1/lm --lm-set loss_on=\"text\"")

    replay = tmp_path / "replay"
    for command in commands:  # as a user would paste them, WORLD and BUNDLE being folders of their choice
        words = shlex.split(command.replace("WORLD", str(replay / "world")).replace("BUNDLE", str(replay / "b")))
        assert words[0] == "raylayers" and main(words[1:]) == 0
    rebuilt, original = load_file(replay / "b" / "lm" / "model.safetensors"), load_file(second / "lm" /
                                                                                        "model.safetensors")
    assert set(rebuilt) == set(original) and all(rebuilt[key].equal(original[key]) for key in original)

    capsys.readouterr()
    assert main(["pretrain-world", "--world", str(tiny_world), "--out", str(tmp_path / "bad"), "--lm-set",
                 "drill_fractoin=0.5"]) == 2
    err = capsys.readouterr().err
    assert "drill_fractoin" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()  # refused before the encoder trained
    assert main(["pretrain-world", "--world", str(tiny_world), "--out", str(tmp_path / "bad"), "--lm-set",
                 "init_from=elsewhere"]) == 2
    assert "use --lm-from" in capsys.readouterr().err


def test_an_lms_lineage_reads_a_report_or_a_record_of_runs_and_names_a_file_it_cannot_read(tmp_path):
    from raylayers.pretrain.lm import lineage

    run = {"config": {"steps": 5}, "steps": 5, "finished": True, "text_qa": {"overall": {"accuracy": 0.5}}}
    (tmp_path / "pretrain_lm.json").write_text(json.dumps(run | {"lineage": [{"config": None, "weights": "w"}]}))
    assert lineage(str(tmp_path)) == [{"config": None, "weights": "w"},
                                      {"config": {"steps": 5}, "steps": 5, "finished": True, "overall": 0.5}]
    record = {"about": "two runs", "runs": [run | {"text_qa": {"overall": 0.25}}, run | {"finished": False}]}
    (tmp_path / "pretrain_lm.json").write_text(json.dumps(record))  # the shape of a hand-kept record of runs
    assert [(r["overall"], r["finished"]) for r in lineage(str(tmp_path))] == [(0.25, True), (0.5, False)]
    assert lineage(str(tmp_path / "none")) == [{"weights": str(tmp_path / "none"), "config": None}]
    assert lineage(None) == []
    (tmp_path / "pretrain_lm.json").write_text(json.dumps({"steps": 3, "text_qa": 0.5}))
    with pytest.raises(UserError, match="is not an LM pretraining report raylayers can read"):
        lineage(str(tmp_path))
