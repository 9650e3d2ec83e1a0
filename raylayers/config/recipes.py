"""The shipped training recipes (`raylayers/configs/train_<name>.yaml`), found by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from raylayers.errors import UserError


def resolve_config_path(name: str | Path) -> Path:
    """A YAML path, or the name of a shipped recipe (`demo` -> raylayers/configs/train_demo.yaml)."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    shipped = Path(str(resources.files("raylayers.configs").joinpath(f"train_{name}.yaml")))
    if shipped.is_file():
        return shipped
    names = sorted(p.stem.removeprefix("train_") for p in shipped.parent.glob("train_*.yaml"))
    raise UserError(f"config '{name}' is neither a file nor a shipped recipe (shipped: {', '.join(names)})")
