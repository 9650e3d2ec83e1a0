"""Layer geometry for the `geometry` searcher: layers as points, and a Gaussian-process surrogate over configurations.

TPE (and every categorical sampler) treats layer 17 and layer 18 as unrelated categories: measuring one teaches it
nothing about the other, although the LRS matrix says they are near-identical. Here each layer is a point:
- its position in the encoder (layer / depth), and
- its classical-MDS coordinates of the LRS dissimilarity 1 - similarity (the top eigen-directions, those holding at
  least 1% of the spread), so layers the LRS finds alike are close whatever their numbers.

A configuration is a vector in blocks: per LRS group, whether the configuration uses a layer of that group and that
layer's point (the mean point when several layers of one group are used); then one-hots of the connector, the number
of layers and each choice hyper-parameter. The surrogate is a Gaussian process whose kernel is additive over those
blocks (one Matern-5/2 per group block, one over the categorical block): a fusion's score is modelled as a sum of
what each group's layer contributes plus what the connector contributes, so evidence about (5, 16, 23) with concat
moves belief about (7, 16, 23) with dense_sci. Each group block also has a linear term on the layer's position
within its group: with it the model can believe "deeper in this group is better" and extrapolate it, so having seen
23 < 18 < 17 it jumps ahead to 13 instead of walking 16, 15, 14 one full training at a time (measured in the
benchmark: the hallucination table's worst seeds went from 66k to 47k steps). Two length-scales (layer points;
categorical one-hots), the weight of the linear term (0 included) and the noise are chosen by the marginal
likelihood over a small grid, each time the model is refit (a few dozen observations:
milliseconds in numpy). The next configuration is the unmeasured one with the largest expected improvement over the
best observation; configurations still running count as observed at the model's mean (the "kriging believer"), so
two running trials are never the same one and the next one is not drawn right beside a running one.

Why not an existing sampler (README, "The geometry searcher"): Optuna's GPSampler works over a fixed box of floats
and categoricals; our space is conditional (the number of layers decides which groups exist) and discrete, so its
continuous proposals would have to be rounded to the nearest valid configuration, which repeats configurations
(each repeat a wasted model fit) and gives it no additive structure over groups. The spaces here are enumerable
(hundreds to a few thousand configurations), so scoring every unmeasured configuration exactly is cheaper and never
proposes a repeat. Optuna's study still records every trial (the proposal goes in through `enqueue_trial`), so
pruning, resume and the results table work as for TPE.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from raylayers.search.space import Candidate, LayerSpace

LAYER_LENGTHSCALES = (0.05, 0.1, 0.2, 0.4, 0.8)
CATEGORICAL_LENGTHSCALES = (0.5, 1.0, 2.0, 4.0)
NOISES = (1e-4, 1e-2, 1e-1)
TRENDS = (0.0, 1.0, 4.0)  # weight of the linear term along each group's layers (0: none)
MDS_MIN_SHARE = 0.01


def layer_points(layer_space: LayerSpace) -> dict[int, np.ndarray]:
    """layer -> its point: [position / depth, classical-MDS coordinates of 1 - similarity]."""
    depth = layer_space.num_encoder_layers
    dissimilarity = 1.0 - np.asarray(layer_space.similarity, dtype=float)
    dissimilarity = (dissimilarity + dissimilarity.T) / 2
    np.fill_diagonal(dissimilarity, 0.0)
    centring = np.eye(depth) - 1.0 / depth
    inner = -0.5 * centring @ (dissimilarity ** 2) @ centring
    values, vectors = np.linalg.eigh(inner)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    positive = values[values > 0]
    keep = int(np.sum(positive >= MDS_MIN_SHARE * positive.sum())) if positive.size else 0
    mds = vectors[:, :keep] * np.sqrt(values[:keep]) if keep else np.zeros((depth, 0))
    return {layer: np.concatenate([[(layer - 1) / max(depth - 1, 1)], mds[layer - 1]])
            for layer in range(1, depth + 1)}


class ConfigurationGeometry:
    """The feature blocks of every configuration of a space, and the additive kernel between them."""

    def __init__(self, layer_space: LayerSpace, choices: dict[str, list] | None = None):
        self.layer_space = layer_space
        self.groups = list(layer_space.groups)
        self.points = layer_points(layer_space)
        self.connectors = list(dict.fromkeys(layer_space.single_connectors + layer_space.fusion_connectors))
        self.choices = dict(choices or {})
        self.num_layers = list(layer_space.num_layers)

    def blocks(self, candidate: Candidate) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(presence per group, the layer point per group (zeros where absent), the categorical one-hots, the
        position within each group: the used layers' mean, centred on the group's middle and divided by its span,
        in [-0.5, 0.5] (0 where absent))."""
        dim = len(next(iter(self.points.values())))
        presence = np.zeros(len(self.groups))
        points = np.zeros((len(self.groups), dim))
        within = np.zeros(len(self.groups))
        for g, name in enumerate(self.groups):
            members = [layer for layer in candidate.layers if layer in self.layer_space.groups[name]]
            if members:
                presence[g] = 1.0
                points[g] = np.mean([self.points[layer] for layer in members], axis=0)
                span = self.layer_space.groups[name]
                within[g] = (float(np.mean(members)) - (min(span) + max(span)) / 2) / max(max(span) - min(span), 1)
        onehots = [float(candidate.connector == c) for c in self.connectors]
        onehots += [float(len(candidate.layers) == n) for n in self.num_layers]
        hyper = dict(candidate.hyperparameters)
        for key, values in self.choices.items():
            onehots += [float(hyper.get(key) == v) for v in values]
        return presence, points, np.asarray(onehots), within

    def encode(self, candidates: list[Candidate]) -> tuple[np.ndarray, ...]:
        encoded = [self.blocks(c) for c in candidates]
        return tuple(np.stack([e[i] for e in encoded]) for i in range(4))


def _matern52(distance: np.ndarray) -> np.ndarray:
    scaled = math.sqrt(5.0) * distance
    return (1.0 + scaled + scaled ** 2 / 3.0) * np.exp(-scaled)


def additive_kernel(a: tuple, b: tuple, layer_scale: float, categorical_scale: float, trend: float = 0.0
                    ) -> np.ndarray:
    """The mean of one Matern-5/2 per group block (presence and point; two absent blocks are identical), plus
    `trend` x a linear kernel on the position within the group, and one Matern-5/2 over the categorical one-hots."""
    presence_a, points_a, cat_a, trend_a = a
    presence_b, points_b, cat_b, trend_b = b
    total = np.zeros((len(presence_a), len(presence_b)))
    for g in range(presence_a.shape[1]):
        diff_points = points_a[:, None, g, :] - points_b[None, :, g, :]
        square = np.sum(diff_points ** 2, axis=-1) / layer_scale ** 2
        square += (presence_a[:, None, g] - presence_b[None, :, g]) ** 2 / categorical_scale ** 2
        total += _matern52(np.sqrt(square))
        if trend:
            total += trend * trend_a[:, None, g] * trend_b[None, :, g]
    cat_square = np.sum((cat_a[:, None, :] - cat_b[None, :, :]) ** 2, axis=-1) / categorical_scale ** 2
    total += _matern52(np.sqrt(cat_square))
    return total / (presence_a.shape[1] + 1)


def _take(blocks: tuple, index) -> tuple:
    return tuple(block[index] for block in blocks)


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


class GeometryModel:
    """A Gaussian process over the configurations of an enumerable space, refit on demand."""

    def __init__(self, geometry: ConfigurationGeometry, candidates: list[Candidate]):
        self.geometry = geometry
        self.candidates = list(candidates)
        self.index = {c.key: i for i, c in enumerate(self.candidates)}
        self.features = geometry.encode(self.candidates)
        self.hyper: tuple[float, float, float] | None = None

    def fit(self, observed: dict[str, float]) -> tuple[np.ndarray, float, float, np.ndarray, np.ndarray]:
        """Choose the kernel's scales and noise by marginal likelihood; (alpha, y mean, y scale, Cholesky, rows)."""
        rows = np.array([self.index[k] for k in observed], dtype=int)
        y = np.array(list(observed.values()), dtype=float)
        mean, scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - mean) / scale
        x = _take(self.features, rows)
        best = None
        for layer_scale, categorical_scale, trend in itertools.product(LAYER_LENGTHSCALES, CATEGORICAL_LENGTHSCALES,
                                                                       TRENDS):
            gram = additive_kernel(x, x, layer_scale, categorical_scale, trend)
            for noise in NOISES:
                try:
                    chol = np.linalg.cholesky(gram + noise * np.eye(len(z)))
                except np.linalg.LinAlgError:
                    continue
                alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
                evidence = -0.5 * float(z @ alpha) - float(np.sum(np.log(np.diag(chol))))
                if best is None or evidence > best[0]:
                    best = (evidence, (layer_scale, categorical_scale, trend, noise), chol, alpha)
        _, self.hyper, chol, alpha = best
        return alpha, mean, scale, chol, rows

    def propose(self, observed: dict[str, float], pending: list[str], excluded: set[str]) -> Candidate | None:
        """The configuration outside `excluded` with the largest expected improvement; `pending` keys are believed
        at the model's mean. None when every configuration is excluded."""
        free = [i for i, c in enumerate(self.candidates) if c.key not in excluded]
        if not free:
            return None
        if len(observed) < 2:
            return self.candidates[free[0]]
        observed = dict(observed)
        if pending:  # kriging believer: a running configuration counts as measured at the posterior mean
            alpha, mean, scale, _, rows = self.fit(observed)
            x_pending = _take(self.features, np.array([self.index[k] for k in pending]))
            cross = additive_kernel(x_pending, _take(self.features, rows), *self.hyper[:3])
            for key, value in zip(pending, cross @ alpha * scale + mean):
                observed.setdefault(key, float(value))
        alpha, mean, scale, chol, rows = self.fit(observed)
        x_free = _take(self.features, np.array(free))
        cross = additive_kernel(x_free, _take(self.features, rows), *self.hyper[:3])
        mu = cross @ alpha
        solved = np.linalg.solve(chol, cross.T)
        trend_free = x_free[3]
        prior = 1.0 + self.hyper[2] * np.sum(trend_free ** 2, axis=1) / (trend_free.shape[1] + 1)
        sigma = np.sqrt(np.maximum(prior - np.sum(solved ** 2, axis=0), 1e-12))
        incumbent = float(np.max((np.array(list(observed.values())) - mean) / scale))
        gap = mu - incumbent
        z = gap / sigma
        improvement = gap * _normal_cdf(z) + sigma * _normal_pdf(z)
        return self.candidates[free[int(np.argmax(improvement))]]
