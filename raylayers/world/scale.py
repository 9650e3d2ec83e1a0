"""The world's scale (`WorldScale`, the `SCALES` presets: `raylayers.config.world`, their one home) and
`WorldError`, the one error a bad `build_world` argument raises."""

from __future__ import annotations

from raylayers.config.world import SCALES, WorldScale
from raylayers.errors import UserError

__all__ = ["SCALES", "WorldError", "WorldScale"]


class WorldError(UserError, ValueError):
    """A bad argument to `build_world` (a ValueError for library callers, a one-line UserError for the CLI)."""
