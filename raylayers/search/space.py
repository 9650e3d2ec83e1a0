"""Search spaces: the YAML schema, validation that names the key, and the configurations a space holds.

A space file has five sections (see search_spaces/*.yaml, each with the command that runs it in its header):
- `base`: the training recipe every trial starts from (a shipped recipe name or a train YAML, plus overrides);
- `lrs`: where the layer groups come from (an `lrs.json`, or images to compute it from first);
- `space`: how many layers, from which groups (at most one per group by default), which connectors, and a few
  training hyper-parameters;
- `objective`: the benchmarks, answer mode and category weights (equal by default) of the score;
- `budget`: trials, concurrency, searcher, early-stopping rungs, retries, seed.

A configuration is (layers, connector, hyper-parameters); `Candidate.key` names it uniquely, so a repeat is found
by key. Layers are positive numbers (DESIGN.md).

LRS priors (the rule the README documents):
1. the first trials are the usual default, the penultimate layer alone (first: ASHA never stops the first trial
   at a rung, so the baseline is always measured in full), then each group's representative alone and the concat
   of the representatives (with 2+ groups);
2. the next `budget.prior_trials` trials draw each layer from its group with probability proportional to
   exp(similarity(layer, representative) / `space.prior_temperature`), so representative-like layers come first;
3. after that, the searcher (TPE by default) proposes from what it has measured.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
from pathlib import Path

from raylayers.config import from_dict, read_yaml
from raylayers.errors import UserError
from raylayers.paths import BENCH, LOCAL, RECIPE, path_field, resolve_paths

SEARCHERS = ("tpe", "random", "grid")
SINGLE_CONNECTORS = ("linear", "mlp2x_gelu")


# ================================================================================================ the schema
@dataclasses.dataclass
class BaseSection:
    """The training recipe of every trial."""

    config: str = path_field(RECIPE, default="demo")
    """A shipped recipe name (demo, paper_mobilellama_1.4b) or a `raylayers train` YAML."""
    set: dict = dataclasses.field(default_factory=dict)
    """Overrides as `key.path: value` (the same keys as `raylayers train --set`)."""


@dataclasses.dataclass
class LRSSection:
    """The layer groups."""

    file: str | None = path_field(LOCAL, default=None)
    """An lrs.json written by `raylayers lrs`; computed into it first when missing and `images` is given."""
    images: str | None = path_field(LOCAL, default=None)
    """Images to compute the LRS from (folder, LLaVA json or benchmark folder) when `file` does not exist."""
    groups: str = "auto"
    """Groups when computing: a number or `auto`."""
    metric: str = "cosine"
    """Similarity when computing: cosine or cka."""
    max_images: int = 256
    """Images when computing."""


@dataclasses.dataclass
class SpaceSection:
    """What the search may choose."""

    num_layers: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3])
    """How many encoder layers a configuration reads."""
    groups: list[str] = dataclasses.field(default_factory=list)
    """LRS groups layers may come from (empty: all)."""
    one_per_group: bool = True
    """At most one layer per group (the paper's fusion rule)."""
    layers: list[int] = dataclasses.field(default_factory=list)
    """Candidate layers (negative numbers count from the end; empty: every layer 1..L)."""
    single_connectors: list[str] = dataclasses.field(default_factory=lambda: ["mlp2x_gelu"])
    """Connectors for one layer (linear, mlp2x_gelu)."""
    fusion_connectors: list[str] = dataclasses.field(default_factory=lambda: ["concat"])
    """Connectors for several layers (concat, dense_sti, dense_sci, dense_dci, mmfuser, scalar_mix,
    internal_direct)."""
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    """Training keys to tune: `stage2.learning_rate: {log_uniform: [1e-4, 3e-3]}`, `{uniform: [a, b]}` or
    `{choice: [...]}`."""
    baseline: bool = True
    """Try the penultimate layer alone (LLaVA's habit) among the first trials."""
    priors: bool = True
    """Start from the LRS representatives and favour representative-like layers (see the module docstring)."""
    prior_temperature: float = 0.1
    """Temperature of the representative-likeness sampling (smaller: closer to the representatives)."""


@dataclasses.dataclass
class ObjectiveSection:
    """The score a trial is ranked by."""

    bench: str = path_field(BENCH, default="world")
    """Benchmarks (`raylayers eval --bench`): folders, a world, or world task names, comma-separated."""
    mode: str = "likelihood"
    """Answer mode: likelihood (options scored by log-likelihood) or greedy."""
    limit: int | None = None
    """At most this many questions per benchmark."""
    weights: dict = dataclasses.field(default_factory=dict)
    """Category weights (general, ocr, vision_centric, hallucination); missing ones weigh 1."""
    batch_size: int = 32
    """Questions per forward pass."""


@dataclasses.dataclass
class BudgetSection:
    """How much to spend and how."""

    trials: int = 8
    """Trials to run (configurations already measured are answered from the results table and not counted)."""
    concurrency: int = 1
    """Trials at once (each needs the base recipe's workers x cpus_per_worker CPUs, or GPUs)."""
    searcher: str = "tpe"
    """tpe (Optuna TPE with LRS priors), random (uniform over configurations) or grid (all, in order)."""
    seed: int = 0
    """Seed of the searcher."""
    prior_trials: int = 2
    """Trials drawn from the representative-likeness prior after the seeded ones (tpe only)."""
    grace_period: int = 0
    """Early stopping: first ASHA rung, in training steps (0: no early stopping)."""
    reduction_factor: int = 2
    """ASHA: keep the best 1/reduction_factor at each rung."""
    retries: int = 1
    """Times a crashed trial is retried before it is recorded as failed."""
    storage_path: str | None = path_field(LOCAL, default=None)
    """Shared storage (NFS path, s3://...) for Tune and Train on a multi-node cluster."""


@dataclasses.dataclass
class SearchConfig:
    """`raylayers search --space FILE.yaml`."""

    base: BaseSection = dataclasses.field(default_factory=BaseSection)
    """The training recipe."""
    lrs: LRSSection = dataclasses.field(default_factory=LRSSection)
    """The layer groups."""
    space: SpaceSection = dataclasses.field(default_factory=SpaceSection)
    """The search space."""
    objective: ObjectiveSection = dataclasses.field(default_factory=ObjectiveSection)
    """The score."""
    budget: BudgetSection = dataclasses.field(default_factory=BudgetSection)
    """The budget."""
    name: str = "search"
    """Experiment name (Tune's folder under the output)."""


def load_search_config(path: str | Path, overrides: list[str] | None = None) -> SearchConfig:
    """Read and validate a space file; every error names the file and the key."""
    from raylayers.config import apply_override

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--space '{path}': no such file")
    raw = read_yaml(path)
    for assignment in overrides or []:
        if assignment.startswith("base.set."):  # base.set holds flat training keys: base.set.cache.dir=...
            import yaml

            key, _, value = assignment[len("base.set."):].partition("=")
            section = raw.setdefault("base", {})
            section.setdefault("set", {})[key.strip()] = yaml.safe_load(value) if value.strip() else ""
            continue
        apply_override(raw, assignment)
    where = f"'{path}'"
    if "groups" in raw.get("lrs", {}) and not isinstance(raw["lrs"]["groups"], str):
        raw["lrs"]["groups"] = str(raw["lrs"]["groups"])
    config = resolve_paths(from_dict(SearchConfig, raw, where))  # relative paths mean the user's folder (paths.py)
    validate(config, where)
    return config


def validate(config: SearchConfig, where: str) -> None:
    from raylayers.connectors import CONNECTORS
    from raylayers.evaluate.schema import CATEGORIES
    from raylayers.evaluate.predict import MODES

    space, budget = config.space, config.budget
    if not space.num_layers or any(n < 1 for n in space.num_layers):
        raise UserError(f"{where}: space.num_layers must list positive numbers, got {space.num_layers}")
    for key, names in (("space.single_connectors", space.single_connectors),
                       ("space.fusion_connectors", space.fusion_connectors)):
        for name in names:
            if name not in CONNECTORS:
                raise UserError(f"{where}: {key}: unknown connector '{name}' (valid: {', '.join(CONNECTORS)})")
    bad_single = [n for n in space.single_connectors if n not in SINGLE_CONNECTORS]
    if bad_single:
        raise UserError(f"{where}: space.single_connectors: '{bad_single[0]}' is a fusion connector "
                        f"(single-layer: {', '.join(SINGLE_CONNECTORS)})")
    if 1 in space.num_layers and not space.single_connectors:
        raise UserError(f"{where}: space.single_connectors is empty but space.num_layers has 1")
    if any(n > 1 for n in space.num_layers) and not space.fusion_connectors:
        raise UserError(f"{where}: space.fusion_connectors is empty but space.num_layers has more than 1")
    for key, spec in space.hyperparameters.items():
        _check_hyperparameter(key, spec, where)
    if budget.searcher not in SEARCHERS:
        raise UserError(f"{where}: budget.searcher '{budget.searcher}' (valid: {', '.join(SEARCHERS)})")
    if budget.searcher == "grid":
        continuous = [k for k, v in space.hyperparameters.items() if "choice" not in v]
        if continuous:
            raise UserError(f"{where}: space.hyperparameters.{continuous[0]}: grid search needs a choice list")
    for key in ("trials", "concurrency", "reduction_factor"):
        if getattr(budget, key) < 1:
            raise UserError(f"{where}: budget.{key} must be at least 1")
    for key in ("grace_period", "retries", "prior_trials"):
        if getattr(budget, key) < 0:
            raise UserError(f"{where}: budget.{key} must not be negative")
    if config.objective.mode not in MODES:
        raise UserError(f"{where}: objective.mode '{config.objective.mode}' (valid: {', '.join(MODES)})")
    for category in config.objective.weights:
        if category not in CATEGORIES:
            raise UserError(f"{where}: objective.weights.{category}: unknown category "
                            f"(valid: {', '.join(CATEGORIES)})")
    if space.prior_temperature <= 0:
        raise UserError(f"{where}: space.prior_temperature must be positive")


def _check_hyperparameter(key: str, spec, where: str) -> None:
    from raylayers.config import TrainConfig

    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("choice", "uniform", "log_uniform"):
        raise UserError(f"{where}: space.hyperparameters.{key}: give one of {{choice: [...]}}, "
                        "{uniform: [low, high]}, {log_uniform: [low, high]}")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise UserError(f"{where}: space.hyperparameters.{key}.{kind}: expected a non-empty list")
    if kind != "choice":
        if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values) or values[0] >= values[1]:
            raise UserError(f"{where}: space.hyperparameters.{key}.{kind}: expected [low, high] with low < high")
        if kind == "log_uniform" and values[0] <= 0:
            raise UserError(f"{where}: space.hyperparameters.{key}.log_uniform: low must be positive")
    node = TrainConfig
    for part in key.split("."):
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            raise UserError(f"{where}: space.hyperparameters: '{key}' is not a training key")
        node = fields[part].type if isinstance(fields[part].type, type) else _resolve_type(node, part)


def _resolve_type(owner, name: str):
    import typing

    return typing.get_type_hints(owner)[name]


# ================================================================================================ configurations
@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration: positive layer numbers (sorted), a connector, hyper-parameters."""

    layers: tuple[int, ...]
    connector: str
    hyperparameters: tuple[tuple[str, object], ...] = ()

    @property
    def key(self) -> str:
        parts = [f"layers={','.join(map(str, self.layers))}", f"connector={self.connector}"]
        parts += [f"{k}={_canonical(v)}" for k, v in self.hyperparameters]
        return "|".join(parts)


def _canonical(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value) if not isinstance(value, str) else value


@dataclasses.dataclass
class LayerSpace:
    """The space resolved against an encoder's depth and its LRS groups."""

    num_encoder_layers: int
    groups: dict[str, list[int]]  # allowed group -> candidate layers in it (non-empty)
    representatives: dict[str, int]  # group -> representative layer
    similarity: list[list[float]]  # L x L, layers 1..L
    num_layers: list[int]
    one_per_group: bool
    single_connectors: list[str]
    fusion_connectors: list[str]
    penultimate: int

    @property
    def layers(self) -> list[int]:
        return sorted({layer for members in self.groups.values() for layer in members})

    def group_of(self, layer: int) -> str:
        return next(name for name, members in self.groups.items() if layer in members)

    def layer_sets(self, n: int) -> list[tuple[int, ...]]:
        """Every set of n candidate layers the rules allow."""
        if n == 1:
            return [(layer,) for layer in self.layers]
        if self.one_per_group:
            sets = []
            for names in itertools.combinations(self.groups, n):
                sets.extend(tuple(sorted(choice)) for choice in itertools.product(*(self.groups[g] for g in names)))
            return sets
        return list(itertools.combinations(self.layers, n))

    def candidates(self, choices: dict[str, list] | None = None) -> list[Candidate]:
        """Every configuration (hyper-parameters: their choice lists; continuous ones are not enumerable)."""
        choices = choices or {}
        grids = list(itertools.product(*choices.values())) if choices else [()]
        result = []
        for n in self.num_layers:
            connectors = self.single_connectors if n == 1 else self.fusion_connectors
            for layers in self.layer_sets(n):
                for connector in connectors:
                    for values in grids:
                        result.append(Candidate(layers, connector, tuple(zip(choices, values))))
        return result


def build_layer_space(space: SpaceSection, lrs: dict, where: str = "space") -> LayerSpace:
    """Resolve a space against an LRS result: candidate layers by group, representatives, the baseline."""
    from raylayers.layers import resolve_layers

    depth = int(lrs["num_layers"])
    groups_all = {g["name"]: list(g["layers"]) for g in lrs["groups"]}
    representatives_all = {g["name"]: int(g["representative"]) for g in lrs["groups"]}
    allowed = space.groups or list(groups_all)
    unknown = [g for g in allowed if g not in groups_all]
    if unknown:
        raise UserError(f"{where}: space.groups: no group '{unknown[0]}' in the LRS "
                        f"(groups: {', '.join(groups_all)}; set lrs.groups to change them)")
    try:
        candidates = set(resolve_layers(space.layers, depth)) if space.layers else set(range(1, depth + 1))
    except (UserError, ValueError) as err:
        raise UserError(f"{where}: space.layers: {err}") from None
    groups = {g: [layer for layer in groups_all[g] if layer in candidates] for g in allowed}
    groups = {g: members for g, members in groups.items() if members}
    if not groups:
        raise UserError(f"{where}: space.layers and space.groups leave no candidate layer")
    too_many = [n for n in space.num_layers if space.one_per_group and n > len(groups)]
    if too_many:
        raise UserError(f"{where}: space.num_layers {too_many[0]} needs {too_many[0]} groups with one_per_group, "
                        f"the LRS gives {len(groups)} ({', '.join(groups)})")
    return LayerSpace(
        num_encoder_layers=depth, groups=groups,
        representatives={g: representatives_all[g] for g in groups}, similarity=lrs["matrix"],
        num_layers=sorted(set(space.num_layers)), one_per_group=space.one_per_group,
        single_connectors=list(space.single_connectors), fusion_connectors=list(space.fusion_connectors),
        penultimate=max(1, depth - 1))


# ================================================================================================ LRS priors
def seeded_candidates(layer_space: LayerSpace, baseline: bool) -> list[Candidate]:
    """The first trials: the penultimate layer alone (first, so early stopping never stops the baseline: ASHA keeps
    the first trial at every rung), each representative alone, and their concat."""
    seeds: list[Candidate] = []
    if baseline and 1 in layer_space.num_layers and layer_space.penultimate in layer_space.layers:
        seeds.append(Candidate((layer_space.penultimate,), layer_space.single_connectors[0]))
    candidates = set(layer_space.layers)  # a representative outside space.layers is not tried
    reps = [layer_space.representatives[g] for g in layer_space.groups
            if layer_space.representatives[g] in candidates]
    if 1 in layer_space.num_layers:
        connector = layer_space.single_connectors[0]
        seeds += [Candidate((rep,), connector) for rep in reps]
    fused = [n for n in layer_space.num_layers if n > 1]
    if fused and len(reps) > 1:
        n = min(max(fused), len(reps))
        connector = "concat" if "concat" in layer_space.fusion_connectors else layer_space.fusion_connectors[0]
        seeds.append(Candidate(tuple(sorted(reps[:n] if n == len(reps) else _spread(reps, n))), connector))
    unique, seen = [], set()
    for seed in seeds:
        if seed.key not in seen:
            unique.append(seed)
            seen.add(seed.key)
    return unique


def _spread(items: list[int], n: int) -> list[int]:
    """n items spread evenly over the list (shallowest and deepest kept)."""
    if n == 1:
        return [items[-1]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def prior_sample(layer_space: LayerSpace, rng: random.Random, temperature: float) -> Candidate:
    """A configuration drawn with representative-like layers favoured (rule 2 of the module docstring)."""
    n = rng.choice(layer_space.num_layers)
    if n == 1 or layer_space.one_per_group:
        names = [rng.choice(list(layer_space.groups))] if n == 1 else rng.sample(list(layer_space.groups), n)
        layers = tuple(sorted(_likely_layer(layer_space, g, rng, temperature) for g in names))
    else:
        layers = tuple(sorted(rng.sample(layer_space.layers, n)))
    connectors = layer_space.single_connectors if n == 1 else layer_space.fusion_connectors
    return Candidate(layers, rng.choice(connectors))


def _likely_layer(layer_space: LayerSpace, group: str, rng: random.Random, temperature: float) -> int:
    rep = layer_space.representatives[group]
    members = layer_space.groups[group]
    weights = [math.exp(float(layer_space.similarity[layer - 1][rep - 1]) / temperature) for layer in members]
    return rng.choices(members, weights=weights, k=1)[0]
