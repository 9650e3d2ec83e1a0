"""When a training stage has diverged, so that a run that failed never reports success.

Three signs, checked after every optimizer step on the all-reduced metrics (so every rank stops at the same step):
- the loss is NaN or inf;
- the gradient norm is NaN or inf (not under fp16, whose loss scaler skips such steps by design);
- the loss sits at the uniform-guess level, ln(V) for a vocabulary of V tokens (what a model that predicts nothing
  scores), within `MARGIN`, for `WINDOW` consecutive steps after warm-up: a run blown up by a huge learning rate
  can keep a finite loss there forever. Only in stages that train the LM: a frozen LM that starts from random
  weights sits there by construction, whatever the connector does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW = 20
"""Consecutive post-warm-up steps at the uniform-guess level that count as diverged."""
MARGIN = 0.01
"""How close to ln(V) counts as "at" it: this fraction of ln(V) (at least 0.02 nats). A learning run leaves the band
within a few steps (the demo's stage 1: 6.56, then 6.06 against ln(635) = 6.45)."""


@dataclass
class DivergenceGuard:
    """Feed it each step's metrics; it answers why the run diverged, or None."""

    vocab_size: int
    warmup_steps: int
    check_grad_norm: bool = True
    check_plateau: bool = True
    _at_uniform: int = 0

    @property
    def uniform_loss(self) -> float:
        return math.log(max(2, self.vocab_size))

    def check(self, metrics: dict) -> str | None:
        """Why the step in `metrics` (its `loss`, `grad_norm` and 1-based `step`) shows divergence, or None."""
        loss, grad_norm = metrics["loss"], metrics.get("grad_norm", 0.0)
        if not math.isfinite(loss):
            return "the loss became NaN/inf"
        if self.check_grad_norm and not math.isfinite(grad_norm):
            return f"the gradient norm became {grad_norm} (loss {loss:.4g})"
        near = abs(loss - self.uniform_loss) <= max(0.02, MARGIN * self.uniform_loss)
        self._at_uniform = self._at_uniform + 1 if near and metrics["step"] > self.warmup_steps else 0
        if self.check_plateau and self._at_uniform >= WINDOW:
            return (f"the loss stayed at the uniform-guess level ln({self.vocab_size}) = {self.uniform_loss:.3f} "
                    f"(a model that predicts nothing) for {WINDOW} steps after warm-up")
        return None
