"""What every config section is built on: pydantic v2 models, typed paths, YAML, `--set`, and one-line errors.

- `Section`: a pydantic model that forbids unknown keys and takes each field's docstring as its description (so the
  JSON Schema `raylayers config-schema` writes documents every key).
- Typed paths (`LocalPath`, `ModelSource`, `BenchList`, `RecipeRef`): strings resolved by `raylayers.paths` when a
  config is validated, so a relative path means the folder the user started in.
- `load_config(cls, path, overrides)`: read YAML with a safe loader, apply `--set key=value` overrides (one function
  for every config, free-form mappings such as a space's `base.set` included), validate, and turn pydantic's error
  into the one line our commands print: the key path, the file, what is wrong.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from raylayers.errors import UserError
from raylayers.paths import resolve_bench, resolve_local, resolve_model, resolve_recipe

T = TypeVar("T", bound="Section")

LocalPath = Annotated[str, AfterValidator(resolve_local)]
"""A local file or folder (or a URI), made absolute against the current directory."""
ModelSource = Annotated[str, AfterValidator(resolve_model)]
"""A local checkpoint folder (made absolute) or a Hugging Face hub id (kept)."""
BenchList = Annotated[str, AfterValidator(resolve_bench)]
"""Comma-separated benchmark folders (made absolute) or demo-world task names (kept)."""
RecipeRef = Annotated[str, AfterValidator(resolve_recipe)]
"""A training recipe YAML (made absolute) or the name of a shipped recipe (kept)."""


class Section(BaseModel):
    """A config section: unknown keys are errors, every field documented by its docstring."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, coerce_numbers_to_str=True,
                              allow_inf_nan=False)


# ================================================================================================ YAML and --set
MAX_YAML_VALUES = 100_000
"""The most values a YAML document may hold once its aliases (`*name`) are expanded: a few nested aliases can
otherwise stand for billions of values (the "billion laughs"), and the config would never finish validating."""


def _expanded_values(node) -> int:
    """How many nodes a composed YAML document holds with every alias expanded, counting up to one past the cap."""
    count, stack = 0, [node]
    while stack and count <= MAX_YAML_VALUES:
        current = stack.pop()
        count += 1
        if isinstance(current, yaml.MappingNode):
            stack.extend(part for pair in current.value for part in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return count


def safe_yaml(text: str, where: str):
    """YAML text with the safe loader, refusing documents whose aliases expand past `MAX_YAML_VALUES` values."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_values(node) > MAX_YAML_VALUES:
            raise UserError(f"{where} expands to more than {MAX_YAML_VALUES} values through YAML aliases (*name); "
                            "write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict:
    """A YAML file's top-level mapping (empty file: {}); unreadable or invalid YAML is one error naming the file."""
    from raylayers.files import read_user_text

    path = Path(path)
    text = read_user_text(path, "config")
    try:
        data = safe_yaml(text, f"config '{path}'")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config '{path}' is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config '{path}' must be a YAML mapping at the top level")
    return data


def _section_of(annotation) -> type[Section] | None:
    """The Section class a field holds (through `X | None`), or None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, Section):
            return candidate
    return None


def _is_mapping(annotation) -> bool:
    """Whether a field is a free-form mapping (`dict[...]`): the rest of a `--set` key is one key inside it."""
    return annotation is dict or typing.get_origin(annotation) is dict


def apply_override(cls: type[Section] | None, raw: dict, assignment: str) -> None:
    """Apply one `--set key.path=value` to the raw mapping of `cls`, in place; the value is parsed as YAML."""
    if "=" not in assignment:
        raise UserError(f"--set expects key=value, got '{assignment}'")
    key, text = (part.strip() for part in assignment.split("=", 1))
    try:
        value = safe_yaml(text, f"--set {key}") if text else ""
    except yaml.YAMLError:
        value = text
    set_key(cls, raw, key, value)


def set_key(cls: type[Section] | None, raw: dict, key: str, value: Any) -> None:
    """Set `key.path` to `value` in the raw mapping of `cls`, in place (the one rule of `--set` for every config).

    The key path follows the sections of `cls`; where it reaches a free-form mapping (a space's `base.set`, a
    model's `connector_options`, an objective's `weights`), the rest of the path is one key of that mapping:
    `base.set.stage1.max_steps=30` sets `{"base": {"set": {"stage1.max_steps": 30}}}`.
    """
    parts = key.split(".")
    node, section = raw, cls
    for position, part in enumerate(parts[:-1]):
        field = section.model_fields.get(part) if section is not None else None
        if field is not None and _is_mapping(field.annotation):
            mapping = node.setdefault(part, {})
            if not isinstance(mapping, dict):
                raise UserError(f"--set {key}: '{part}' is not a mapping")
            mapping[".".join(parts[position + 1:])] = value
            return
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: '{part}' is not a section")
        node, section = child, _section_of(field.annotation) if field is not None else None
    node[parts[-1]] = value


# ================================================================================================ errors
def _key_path(cls: type[Section], location: tuple) -> tuple[str, type[Section] | None]:
    """The dotted key of a pydantic error location, and the section it ends in (None inside a mapping or list).
    Union member tags in the location (`int`, `literal['auto']`) are not keys and are dropped."""
    key, section, in_mapping = "", cls, False
    for part in location:
        if isinstance(part, int):
            key, section = f"{key}[{part}]", None
        elif in_mapping:
            key += f".{part}"
        elif section is not None and part in section.model_fields:
            key = f"{key}.{part}" if key else part
            annotation = section.model_fields[part].annotation
            in_mapping = _is_mapping(annotation)
            section = None if in_mapping else _section_of(annotation)
    return key, section


def one_line(error: ValidationError, cls: type[Section], where: str) -> str:
    """Pydantic's first error as our one line: the key path, the file, what is wrong."""
    first = error.errors(include_url=False)[0]
    location = tuple(first["loc"])
    kind, given = first["type"], first.get("input")
    if kind == "extra_forbidden":
        parent_key, parent = _key_path(cls, location[:-1])
        key = f"{parent_key}.{location[-1]}" if parent_key else str(location[-1])
        valid = f" (valid: {', '.join(sorted(parent.model_fields))})" if parent is not None else ""
        return f"unknown key '{key}' in {where}{valid}"
    key, _ = _key_path(cls, location)
    if kind == "missing":
        return f"missing required key '{key}' in {where}"
    if kind in ("value_error", "assertion_error"):
        message = str(first.get("ctx", {}).get("error", first["msg"]))  # validators name their keys themselves
        return f"{where}: {message}" if not key or key in message else f"'{key}' in {where}: {message}"
    if kind == "literal_error":
        return f"'{key}' in {where} must be one of {first['ctx']['expected']}, got {given!r}"
    message = first["msg"][0].lower() + first["msg"][1:]
    return f"'{key}' in {where}: {message}, got {given!r}"


# ================================================================================================ loading
def validate(cls: type[T], raw: Any, where: str = "config") -> T:
    """`cls` from plain data (paths resolved), or a `UserError` with the one line."""
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping, got {type(raw).__name__}")
    try:
        return cls.model_validate(raw)
    except ValidationError as error:
        raise UserError(one_line(error, cls, where)) from None


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                data: dict | None = None, where: str | None = None) -> T:
    """Read YAML (or take `data`), apply `--set` overrides, and validate into `cls`. `where` names the source in
    errors (default: the file)."""
    raw = dict(data or {}) if path is None else read_yaml(path)
    for assignment in overrides or []:
        apply_override(cls, raw, assignment)
    return validate(cls, raw, where or (f"'{path}'" if path is not None else "config"))


def dump_yaml(config: Section) -> str:
    """A config as YAML, in field order (what `config.yaml` and `best_config.yaml` hold)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
