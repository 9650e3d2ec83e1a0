"""The training driver (`raylayers train`, and every search trial): check, launch the workers, read the outcome.

`run_training(config, out)` checks everything that needs no worker (data files, encoder depth, connector and
layers, the LM), resolves the layer numbers once against the encoder's depth, writes `config.yaml`, then runs a
Ray Train `TorchTrainer` of `resources.num_workers` workers (gloo on CPU, NCCL on GPU; `worker.py`) and calls
`fit()`. A worker's `UserError` comes back as one line; a diverged run raises one naming the reason, the step and
the last good checkpoint. Inside a Tune trial, `tune_callback=True` forwards the probe's reports to Tune (ASHA reads
them). An --out that already holds a run is refused, unless `resume` (`run_folder.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

from raylayers import timings
from raylayers.config import TrainConfig, dump_yaml
from raylayers.errors import UserError, user_error_in
from raylayers.interrupts import blocking
from raylayers.train.checkpoint import newest_complete
from raylayers.train.run_folder import (
    CONFIG_FILE,
    SUMMARY_FILE,
    check_new_run,
    check_resumable,
    ray_run_folder,
    run_state,
)
from raylayers.train.worker import DIVERGED_FILE, train_loop_per_worker


def check_records(config: TrainConfig) -> None:
    """Every record of the data files the run reads, validated as the workers will (a malformed record, a file
    that is not UTF-8 or not JSON: one error naming it, before any worker starts)."""
    from raylayers.data import load_records

    for stage_name in config.stages:
        load_records(getattr(config.data, stage_name), config.data.max_records)
    if config.data.val:
        load_records(config.data.val, config.data.val_records)


def check_before_launch(config: TrainConfig, records: bool = True, encoder_layers: int | None = None) -> dict:
    """Everything that can be checked without a worker: data files (and with `records`, every record in them),
    encoder depth, connector name and layers. `encoder_layers`: the encoder's depth, known already (a search
    trial: the search driver loaded the encoder, the LM and the tokenizer of the same base recipe once), so they
    are not loaded again.

    Returns what the driver learnt: the encoder's depth, the selected `layers` (positive, resolved once here) and
    the `vision_layers` the connector reads.
    """
    from raylayers.connectors import connector_class
    from raylayers.model import resolve_model_layers

    cls = connector_class(config.model.connector)  # names the valid choices
    for stage_name in config.stages:
        path = Path(getattr(config.data, stage_name))
        if not path.is_file():
            raise UserError(f"data.{stage_name}: '{path}' does not exist")
    if config.data.val and not Path(config.data.val).is_file():
        raise UserError(f"data.val: '{config.data.val}' does not exist")
    if records:
        check_records(config)
    depth = encoder_layers
    if depth is None:  # (transformers is imported only here: a search trial's process never needs it)
        from transformers import AutoConfig

        from raylayers.encoders import load_encoder_config, load_errors, quiet_transformers
        from raylayers.model import load_tokenizer

        quiet_transformers()
        encoder_config = load_encoder_config(config.model.encoder, config.model.trust_remote_code)
        depth = (getattr(encoder_config, "vision_config", None) or encoder_config).num_hidden_layers
        try:
            AutoConfig.from_pretrained(config.model.lm, trust_remote_code=config.model.trust_remote_code)
        except load_errors() as err:
            raise UserError(f"model.lm: cannot load '{config.model.lm}': {' '.join(str(err).split())[:200]}"
                            ) from None
        load_tokenizer(config.model.lm, config.model.trust_remote_code)
    layers = resolve_model_layers(config.model, depth)
    return {"encoder_layers": depth, "layers": layers, "vision_layers": cls.required_layers(layers, depth)}


def run_training(config: TrainConfig, out: str | Path, tune_callback: bool = False, resume: bool = False,
                 encoder_layers: int | None = None, evaluation: dict | None = None, tune_score_offset: float = 0.0,
                 tune_extras: dict | None = None) -> dict:
    """Run the recipe on Ray Train; returns the run's summary. Raises UserError on bad input or divergence.

    Without `resume`, an `out` that holds a run (finished or not) is refused before anything is written. With it
    (`raylayers train --resume`, and every search trial: Tune retries and restores trials into their folder), an
    unfinished run with the same config continues from its last checkpoint, and a finished one with the same config
    is returned as it is, nothing rewritten; another config is refused naming the keys that differ.
    `encoder_layers`: the encoder's depth when the caller checked the encoder, LM and tokenizer already.
    `evaluation`: `evaluate_checkpoint`'s arguments (bench, mode, ...): rank 0 evaluates the trained model in
    memory into `out/eval` (a search trial; the summary's `evaluated` says whether it did).
    `tune_score_offset`, `tune_extras`: a search's cost objective (each probe score Tune hears is the probe's answer
    accuracy minus the offset, `unpenalised_score` the accuracy) and what every such report also carries."""
    from raylayers.ray_session import init_ray

    out = Path(out).resolve()
    state = run_state(out) if resume else "none"
    if not resume:
        check_new_run(config, out)  # before anything is written: a finished run's files stay as they are
    # paths are absolute already: a config's paths resolve when it is made. A search checked the records once.
    with timings.span("training checks"):
        checked = check_before_launch(config, records=not tune_callback, encoder_layers=encoder_layers)
    # the layers resolved once, against the encoder's depth: workers and the saved config carry positive numbers
    config = config.model_copy(update={"model": config.model.model_copy(update={"layers": checked["layers"]})})
    if state != "none":
        check_resumable(config, out)
    if state == "finished":
        return json.loads((out / SUMMARY_FILE).read_text())
    out.mkdir(parents=True, exist_ok=True)
    if state == "none":
        (out / CONFIG_FILE).write_text(dump_yaml(config))
    init_ray()
    (out / DIVERGED_FILE).unlink(missing_ok=True)
    resume_from = newest_checkpoint(config, out) if state == "unfinished" else None
    try:
        with timings.span("ray train fit"):  # Ctrl-C reaches us, not Ray
            tune_report = (tune_score_offset, tune_extras or {}) if tune_callback else None
            trainer = _trainer(config, out, tune_report, resume_from, evaluation)
            result = blocking(trainer.fit)
    except Exception as err:  # a worker's UserError arrives wrapped in Ray's error with its traceback
        message = user_error_in(str(err))
        if message is None:
            raise
        raise UserError(message) from None
    if (out / DIVERGED_FILE).exists():
        diverged = json.loads((out / DIVERGED_FILE).read_text())
        last = result.checkpoint.path if result.checkpoint else "none (it diverged before the first)"
        raise UserError(f"training stopped: {diverged.get('reason', 'the loss became NaN/inf')} at "
                        f"{diverged['stage']} step {diverged['step']}; last good checkpoint: {last}")
    from raylayers.files import write_text_atomic

    summary_path = out / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.update({"final_metrics": dict(result.metrics or {}),
                    "checkpoint": result.checkpoint.path if result.checkpoint else None, **checked})
    write_text_atomic(summary_path, json.dumps(summary, indent=2, default=str))
    return summary


HEALTH_CHECK_INTERVAL_S = 0.2


def newest_checkpoint(config: TrainConfig, out: str | Path) -> Path | None:
    """The newest checkpoint of the run in `out` written whole (None for none yet, or for storage at a URI, where
    Ray Train's own record is all there is to go by)."""
    folder = ray_run_folder(config, Path(out).resolve())
    return newest_complete(folder, config.resources.num_workers) if folder is not None else None


def _trainer(config: TrainConfig, out: Path, tune_report: tuple[float, dict] | None, resume_from: Path | None = None,
             evaluation: dict | None = None):
    """The `TorchTrainer`: workers and resources, the backend, storage, restarts, checkpoints kept."""
    import os

    import ray.train

    from raylayers.train.ray_trainer import trainer_class

    # Ray Train's controller polls its workers every 2 s by default: a finished run waits up to that long to be
    # noticed, and every report reaches Tune that late. 0.2 s costs a remote call per worker per poll; a user's
    # own setting wins (the controller reads it from the driver's environment)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", str(HEALTH_CHECK_INTERVAL_S))
    hardware = config.resources
    storage = hardware.storage_path or str(out / "ray")  # an absolute local path, or a URI such as s3://bucket/prefix
    return trainer_class()(  # Ray's TorchTrainer, without its one-second wait at the end of fit() (ray_trainer.py)
        train_loop_per_worker,
        train_loop_config={"config": config.model_dump(), "out": str(out),
                           "threads_per_worker": max(1, hardware.cpus_per_worker),
                           "resume_from": str(resume_from) if resume_from else None, "evaluation": evaluation},
        scaling_config=ray.train.ScalingConfig(num_workers=hardware.num_workers, use_gpu=hardware.use_gpu,
                                               resources_per_worker={"CPU": hardware.cpus_per_worker}),
        torch_config=backend_config("nccl" if hardware.use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=config.name, storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=config.checkpoint.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.checkpoint.keep),
            callbacks=[_probe_to_tune_callback(*tune_report)] if tune_report is not None else []),
    )


def backend_config(backend: str):
    """Ray's `TorchConfig`, or the same settings in a class whose controller does not import torch
    (`raylayers.ray_controller`: 1.9 s off the floor of a `fit()` on 2 cores) when this Ray has what it calls."""
    from raylayers import ray_controller

    if ray_controller.available():
        return ray_controller.ProcessGroupConfig(backend=backend)
    from ray.train.torch import TorchConfig

    return TorchConfig(backend=backend)


def _probe_to_tune_callback(score_offset: float = 0.0, extras: dict | None = None):
    """Ray Train's `TuneReportCallback`, forwarding only the probe's reports, with the validation answer accuracy
    as `score` (what ASHA and the searcher rank by; Tune requires the metric in every result it gets). A search's
    cost objective takes `score_offset` off it (keeping the accuracy as `unpenalised_score`) and adds `extras`."""
    extras = dict(extras or {})
    from ray.tune.integration.ray_train import TuneReportCallback

    class ProbeToTune(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            first = dict(metrics[0]) if metrics else {}
            if "val_answer_accuracy" not in first:
                return
            first["score"] = first["val_answer_accuracy"] - score_offset
            if "cost_ratio" in extras:  # a cost objective
                first["unpenalised_score"] = first["val_answer_accuracy"]
            first.update(extras)
            super().after_report(run_context, [first, *metrics[1:]], checkpoint)

    return ProbeToTune()
