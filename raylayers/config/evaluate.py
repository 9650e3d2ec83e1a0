"""How answers are produced and scored (`raylayers eval`, and a search's objective): one set of defaults."""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import PositiveInt

from raylayers.config.base import Section

EvalMode = Literal["greedy", "likelihood"]
MODES: tuple[str, ...] = typing.get_args(EvalMode)


class EvalOptions(Section):
    """Answering benchmark questions with a checkpoint."""

    mode: EvalMode = "greedy"
    """`greedy`: free-text answers decoded greedily; `likelihood`: the option (letter, yes/no) whose tokens are most
    likely after the prompt (short-answer questions fall back to greedy)."""
    batch_size: PositiveInt = 16
    """Questions per forward pass."""
    limit: PositiveInt | None = None
    """At most this many questions per benchmark (the first ones)."""
