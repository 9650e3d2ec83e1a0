"""Search spaces: loading a space file, and the configurations a space holds.

The schema of a space file, every key typed and documented, is `raylayers.config.search.SearchConfig`;
`load_search_config` reads one and checks its connector names against the connector registry.

A configuration is (layers, connector, hyper-parameters); `Candidate.key` names it uniquely, so a repeat is found
by key. Layers are positive numbers (ARCHITECTURE.md, "Layer numbers").

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

from raylayers.config import SearchConfig, SpaceSection, load_config
from raylayers.connectors.base import penultimate
from raylayers.errors import UserError


def load_search_config(path: str | Path, overrides: list[str] | None = None) -> SearchConfig:
    """Read and validate a space file (paths resolved, `--set` overrides applied); errors name the file and key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--space '{path}': no such file")
    config = load_config(SearchConfig, path, overrides)
    check_connectors(config.space, f"'{path}'")
    return config


def check_connectors(space: SpaceSection, where: str) -> None:
    """Connector names exist, single-layer ones take one layer and fusion ones several."""
    from raylayers.connectors import CONNECTORS

    for key, names in (("space.single_connectors", space.single_connectors),
                       ("space.fusion_connectors", space.fusion_connectors)):
        for name in names:
            if name not in CONNECTORS:
                raise UserError(f"{where}: {key}: unknown connector '{name}' (valid: {', '.join(CONNECTORS)})")
    single = [name for name, cls in CONNECTORS.items() if cls.max_layers == 1]
    fusion = [name for name in space.single_connectors if name not in single]
    if fusion:
        raise UserError(f"{where}: space.single_connectors: '{fusion[0]}' is a fusion connector "
                        f"(single-layer: {', '.join(single)})")
    if 1 in space.num_layers and not space.single_connectors:
        raise UserError(f"{where}: space.single_connectors is empty but space.num_layers has 1")
    if any(n > 1 for n in space.num_layers) and not space.fusion_connectors:
        raise UserError(f"{where}: space.fusion_connectors is empty but space.num_layers has more than 1")


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

    def is_baseline(self, layers, connector: str) -> bool:
        """The penultimate layer alone with a single-layer connector, whatever its hyper-parameters."""
        return list(layers) == [self.penultimate] and connector in self.single_connectors

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
        penultimate=penultimate(depth))


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
