"""Where a user's path points: resolved once, in the process the user started, against the folder they started in.

Ray runs each Tune trial and each Train worker in a working directory of its own, so a relative path that travels
to one of them silently points somewhere else (every demo trial once died on `runs/demo/world/stage1.json`). The
rule, owned here and nowhere else:

- every local path a user gives (a command-line flag, a `--set` value, a path field of a train or space YAML) is
  made absolute against the current working directory when it is read, before anything is shipped to a trial, a
  worker or a job; `~` is expanded;
- a URI (`s3://bucket/x`, `gs://...`, `file://...`) stays as it is;
- where a model may come from the Hugging Face hub (`model.encoder`, `model.lm`, `lrs --encoder`), a value that is
  not a local file or folder and has the shape of a hub id (`gpt2`, `openai/clip-vit-large-patch14-336`) stays a
  hub id, as transformers' `from_pretrained` would read it;
- in a benchmark list (`--bench`, `objective.bench`), a bare name that is not a local folder (`count`, `world`)
  stays a name: it is looked up in the demo world; an `hf:DATASET[:CONFIG[:SPLIT]]` spec stays a spec, its
  DATASET made absolute when it is a local folder (`hf:./pope` -> `hf:/abs/pope`), a hub id kept.

Config fields say what they hold with a typed path (`raylayers.config.base`: `LocalPath`, `ModelSource`,
`BenchList`, `RecipeRef`), which these functions resolve when a config is validated; the command line uses them as
argparse types. Resolving an absolute path again changes nothing, so a config validated again in a worker keeps its
paths. On a cluster, the paths must also exist on every node: use shared absolute paths (NFS) or URIs.
"""

from __future__ import annotations

import os
import re

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(value: str) -> bool:
    return bool(_URI.match(value))


def resolve_local(value: str | os.PathLike | None) -> str | None:
    """A local path made absolute against the current directory (`~` expanded); URIs and empty values unchanged."""
    if value is None or str(value) == "" or is_uri(str(value)):
        return None if value is None else str(value)
    return os.path.abspath(os.path.expanduser(str(value)))


def could_be_hub_id(value: str) -> bool:
    """Whether `value` is shaped like a Hugging Face repo id (owner/name), for models and datasets alike."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def resolve_model(value: str | None) -> str | None:
    """A model source: a local folder/file made absolute; a hub id (not on disk, shaped like one) kept."""
    if value is None or is_uri(value):
        return value
    if not os.path.exists(os.path.expanduser(value)) and could_be_hub_id(value):
        return value
    return resolve_local(value)


def _resolve_hf_bench(part: str) -> str:
    """An `hf:` benchmark spec with its dataset made absolute when it names a local folder."""
    dataset, sep, rest = part[len("hf:"):].partition(":")
    if dataset.startswith((".", "~", os.sep)) or os.path.isdir(os.path.expanduser(dataset)):
        dataset = resolve_local(dataset)
    return f"hf:{dataset}{sep}{rest}"


def resolve_bench(value: str | None) -> str | None:
    """A benchmark list: each local path made absolute; bare world task names (`count`, `world`) kept; `hf:`
    specs kept, a local dataset folder in one made absolute."""
    if value is None:
        return None
    parts = []
    for part in (p.strip() for p in str(value).split(",")):
        if not part:
            continue
        if part.startswith("hf:"):
            parts.append(_resolve_hf_bench(part))
            continue
        is_name = os.sep not in part and not part.startswith((".", "~")) and not os.path.exists(part)
        parts.append(part if is_name or is_uri(part) else resolve_local(part))
    return ",".join(parts)


def resolve_recipe(value: str | None) -> str | None:
    """A training recipe: a YAML path made absolute; the name of a shipped recipe (no folder, no suffix) kept."""
    if value is None:
        return None
    is_name = os.sep not in value and not value.endswith((".yaml", ".yml")) and not os.path.exists(value)
    return value if is_name else resolve_local(value)
