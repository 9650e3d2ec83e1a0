"""`raylayers train`: the two-stage LLaVA recipe as DeepSpeed inside Ray Train.

Two levels, as in Ray's Train/Tune examples:
- `driver.py`: `run_training(config, out)` checks the config before any worker starts, builds a `TorchTrainer` and
  calls `fit()` (a search trial calls it too);
- `worker.py`: `train_loop_per_worker(loop_config)` on every worker: setup, each stage, finish. Everything it needs
  travels in `loop_config` (the config as a dict; the DeepSpeed dicts are built from it), never in module globals.
Around them: `deepspeed.py` (the ZeRO JSON filled from the recipe), `schedule.py` (warm-up + cosine), `probe.py`
(validation loss, answer accuracy, image reliance), `checkpoint.py` (what a stage or a restart resumes from),
`divergence.py` (when a stage has diverged) and `run_folder.py` (what an --out already holds; `--resume`).
"""

from raylayers.train.deepspeed import deepspeed_config
from raylayers.train.driver import check_before_launch, run_training
from raylayers.train.run_folder import run_state

__all__ = ["check_before_launch", "deepspeed_config", "run_state", "run_training"]
