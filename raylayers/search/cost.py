"""What a configuration costs (visual tokens, connector parameters) and the cost-aware objective (`objective.cost`).

- `connector_cost`: a connector built on the `meta` device (no memory, no weights) from the `ConnectorSpec` the model
  would build (`raylayers.model.connector_spec`): its `num_tokens(num_patches)` and its parameter count, cached per
  (connector, layers, projector, options, sizes), so hundreds of configurations take a fraction of a second.
- `model_dims`: the sizes a connector is built for, read from the encoder's and LM's transformers configs only.
- `SearchCosts`: every configuration's cost in one search (from the base recipe for `--objective train`, from the
  table's `visual_tokens` / `connector_params` columns for a replay table), the baseline's cost, the configurations
  over `max_ratio` x the baseline that are left out, and the rule every reported score follows:
  objective = score - penalty x (cost / baseline cost - 1).
- `cost_summary`: the summary's `cost` block, with the Pareto front of the completed trials on (score up, cost down).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

from raylayers.config import CostSection, ModelConfig, SearchConfig
from raylayers.errors import UserError
from raylayers.model import ModelDims, connector_spec, patch_grid
from raylayers.search.space import Candidate, LayerSpace

MEASURES = ("visual_tokens", "connector_params")
PAPER_DIMS = ModelDims(vision_dim=1024, num_encoder_layers=24, grid=(24, 24), llm_dim=2048, num_llm_layers=24)
"""The benchmark tables' model: CLIP-L/336 (24 layers, width 1024, 336 px in 14 px patches: 24 x 24 = 576 patches)
and an LM of width 2048 and 24 layers (MobileLLaMA-1.4B)."""


# ================================================================================================ one configuration
@functools.lru_cache(maxsize=None)
def _built_cost(name: str, layers: tuple[int, ...], projector: str, options: str, dims: ModelDims) -> tuple[int, int]:
    import torch

    from raylayers.connectors import build_connector

    spec = connector_spec(name, list(layers), projector, json.loads(options), dims)
    with torch.device("meta"):  # shapes only: nothing is allocated
        connector = build_connector(spec)
    return int(connector.num_tokens(dims.num_patches)), sum(p.numel() for p in connector.parameters())


def connector_cost(name: str, layers, dims: ModelDims, projector: str = "mlp2x_gelu",
                   options: dict | None = None) -> dict[str, int]:
    """{visual_tokens, connector_params} of connector `name` over positive `layers` for a model of `dims`."""
    tokens, params = _built_cost(name, tuple(sorted(int(x) for x in layers)), projector,
                                 json.dumps(options or {}, sort_keys=True, default=str), dims)
    return {"visual_tokens": tokens, "connector_params": params}


@functools.lru_cache(maxsize=None)
def model_dims(encoder: str, lm: str, trust_remote_code: bool = False) -> ModelDims:
    """The encoder's width, depth and patch grid and the LM's width and depth, from their configs (no weights)."""
    from transformers import AutoConfig

    from raylayers.encoders import load_encoder_config, load_errors

    config = load_encoder_config(encoder, trust_remote_code)
    vision = getattr(config, "vision_config", None) or config
    patch = getattr(vision, "patch_size", None)
    patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch) if patch else None
    size = getattr(vision, "image_size", None)
    if not size:
        raise UserError(f"encoder '{encoder}': its config has no image_size to count its patches by")
    size = (size, size) if isinstance(size, int) else tuple(size)
    try:
        text = AutoConfig.from_pretrained(lm, trust_remote_code=trust_remote_code).get_text_config()
    except load_errors() as err:
        raise UserError(f"cannot read the config of the LM '{lm}': {str(err).splitlines()[0][:200]}") from None
    return ModelDims(vision_dim=int(getattr(vision, "hidden_size", 0) or 0),
                     num_encoder_layers=int(vision.num_hidden_layers), grid=patch_grid(size, patch),
                     llm_dim=int(text.hidden_size), num_llm_layers=int(text.num_hidden_layers))


def model_cost(model: ModelConfig, layers) -> dict[str, int]:
    """The cost of a training config's model with these (positive) layers: its sizes, projector and options."""
    return connector_cost(model.connector, layers, model_dims(model.encoder, model.lm, model.trust_remote_code),
                          model.projector, model.connector_options)


def cost_key(layers, connector: str, hyperparameters: dict, choice_keys) -> str:
    """The key a configuration's cost is filed under: its layers, connector and choice hyper-parameters (a
    continuous one cannot change the model)."""
    return Candidate(tuple(sorted(int(x) for x in layers)), connector,
                     tuple((k, hyperparameters[k]) for k in sorted(choice_keys) if k in hyperparameters)).key


# ================================================================================================ one search
@dataclass
class SearchCosts:
    """Every configuration's cost in one search, and the objective's rule (picklable: trials and callbacks get it)."""

    costs: dict[str, dict]  # cost key -> {visual_tokens, connector_params}
    choice_keys: tuple[str, ...] = ()
    cost: CostSection | None = None
    baseline_key: str | None = None
    baseline_cost: float | None = None
    left_out: frozenset[str] = field(default_factory=frozenset)

    def key_of(self, trial: dict) -> str:
        return cost_key(trial["layers"], trial["connector"], trial.get("hyperparameters") or {}, self.choice_keys)

    def is_left_out(self, candidate: Candidate) -> bool:
        return cost_key(candidate.layers, candidate.connector, dict(candidate.hyperparameters),
                        self.choice_keys) in self.left_out

    def extras(self, trial: dict) -> dict:
        """What a trial reports besides its score: its costs when known, and its cost ratio with a cost objective."""
        known = self.costs.get(self.key_of(trial))
        if not known:
            return {}
        extras = dict(known)
        if self.cost is not None:
            extras["cost_ratio"] = known[self.cost.measure] / self.baseline_cost
        return extras

    def offset(self, extras: dict) -> float:
        """What the penalty takes off a score: penalty x (cost ratio - 1); 0 without a cost objective."""
        return self.cost.penalty * (extras["cost_ratio"] - 1) if self.cost is not None else 0.0

    def report(self, scores: dict, extras: dict) -> dict:
        """A report's scores with `score` penalised and the unpenalised value kept (`unpenalised_score`)."""
        if self.cost is None:
            return {**scores, **extras}
        return {**scores, **extras, "score": float(scores["score"]) - self.offset(extras),
                "unpenalised_score": float(scores["score"])}

    def describe(self) -> str:
        """The start line's words for the cost objective ('' without one)."""
        if self.cost is None:
            return ""
        cap = f", at most {self.cost.max_ratio:g}x ({len(self.left_out)} configurations left out)" \
            if self.cost.max_ratio is not None else ""
        return (f"; objective = score - {self.cost.penalty:g} x ({self.cost.measure} / baseline's "
                f"{self.baseline_cost:g} - 1){cap}")


def cost_space(config: SearchConfig, layer_space: LayerSpace) -> list[Candidate]:
    """The configurations whose cost can differ: layers, connector and choice hyper-parameters."""
    return layer_space.candidates({k: v["choice"] for k, v in config.space.hyperparameters.items() if "choice" in v})


def search_costs(config: SearchConfig, layer_space: LayerSpace, costs: dict[str, dict]) -> SearchCosts:
    """The search's costs with its baseline and what `max_ratio` leaves out (a UserError when it leaves nothing)."""
    choice_keys = tuple(sorted(k for k, v in config.space.hyperparameters.items() if "choice" in v))
    result = SearchCosts(costs=costs, choice_keys=choice_keys, cost=config.objective.cost)
    section = config.objective.cost
    if section is None:
        return result
    space = cost_space(config, layer_space)
    keys = [cost_key(c.layers, c.connector, dict(c.hyperparameters), choice_keys) for c in space]
    baseline = next((k for c, k in zip(space, keys) if c.layers == (layer_space.penultimate,)
                     and layer_space.single_connectors and c.connector == layer_space.single_connectors[0]), None)
    if baseline is None:  # no penultimate-layer configuration in the space: its cheapest one
        baseline = min(keys, key=lambda k: costs[k][section.measure])
    result.baseline_key, result.baseline_cost = baseline, float(costs[baseline][section.measure])
    if result.baseline_cost <= 0:
        raise UserError(f"objective.cost: the baseline {baseline} costs {result.baseline_cost:g} "
                        f"{section.measure}; a ratio to it means nothing")
    if section.max_ratio is not None:
        limit = section.max_ratio * result.baseline_cost
        result.left_out = frozenset(k for k in keys if costs[k][section.measure] > limit)
        if len(result.left_out) == len(set(keys)):
            raise UserError(f"objective.cost.max_ratio {section.max_ratio:g} leaves no configuration of the space "
                            f"(the baseline {baseline} costs {result.baseline_cost:g} {section.measure}; the "
                            f"cheapest configuration {min(costs[k][section.measure] for k in keys):g})")
    return result


def trained_costs(config: SearchConfig, layer_space: LayerSpace, model_of) -> SearchCosts:
    """`--objective train`: each configuration's cost on the meta device, from the model config `model_of(trial)`
    gives (the base recipe with the trial's hyper-parameters, which may change the projector, the connector's options
    or the models). Without a cost objective a cost that cannot be computed is left unknown; with one it is an
    error."""
    costs, models = {}, {}
    try:
        for candidate in cost_space(config, layer_space):
            hyper = dict(candidate.hyperparameters)
            key = json.dumps(hyper, sort_keys=True, default=str)
            if key not in models:  # the model's sizes and options depend on the hyper-parameters only
                models[key] = model_of({"layers": [1], "connector": candidate.connector, "hyperparameters": hyper})
            model = models[key].model_copy(update={"connector": candidate.connector})
            costs[cost_key(candidate.layers, candidate.connector, hyper, hyper)] = model_cost(model, candidate.layers)
    except (UserError, ValueError, RuntimeError, OSError) as err:
        if config.objective.cost is not None:
            raise UserError(f"objective.cost: cannot compute the cost of a configuration: {err}") from None
        costs = {}
    return search_costs(config, layer_space, costs)


def table_costs(config: SearchConfig, layer_space: LayerSpace, table: dict[str, list[dict]], path) -> SearchCosts:
    """`--objective table:FILE`: each configuration's cost from the table's optional `visual_tokens` and
    `connector_params` columns (constant per configuration); with a cost objective its measure's column is required."""
    section = config.objective.cost
    columns = {c for rows in table.values() for row in rows[:1] for c in row}
    if section is not None and section.measure not in columns:
        raise UserError(f"{path}: objective.cost.measure is {section.measure} but the table has no "
                        f"'{section.measure}' column")
    costs = {}
    for key, rows in table.items():
        known = {m: rows[0].get(m) for m in MEASURES if rows[0].get(m) is not None}
        if section is not None and section.measure not in known:
            raise UserError(f"{path}: configuration {key} has no '{section.measure}' value")
        if known:
            costs[key] = known
    return search_costs(config, layer_space, costs)


# ================================================================================================ the summary
def pareto_front(rows: list[dict], measure: str) -> list[dict]:
    """The completed rows no other completed row beats on both unpenalised score (up) and cost (down), cheapest
    first (a tie on both keeps the first)."""
    points = [r for r in rows if r["status"] == "completed" and r.get("unpenalised_score") is not None
              and r.get(measure) is not None]
    points.sort(key=lambda r: (r[measure], -r["unpenalised_score"]))
    front, best = [], None
    for row in points:
        if best is None or row["unpenalised_score"] > best:
            front.append(row)
            best = row["unpenalised_score"]
    return front


def cost_summary(rows: list[dict], costs: SearchCosts) -> dict | None:
    """The summary's `cost` block (None without a cost objective)."""
    section = costs.cost
    if section is None:
        return None
    front = [{"key": r["key"], "score": r["unpenalised_score"], "cost": r[section.measure],
              "cost_ratio": r["cost_ratio"], "objective": r["score"]} for r in pareto_front(rows, section.measure)]
    return {"measure": section.measure, "penalty": section.penalty, "max_ratio": section.max_ratio,
            "baseline_key": costs.baseline_key, "baseline_cost": costs.baseline_cost,
            "left_out": len(costs.left_out), "front": front}
