"""Bootstrap confidence intervals (seeded: the same data and seed give the same interval)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def bootstrap_ci(values, seed: int, statistic: Callable[[np.ndarray], float] = np.mean,
                 n_boot: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over the rows of ``values``."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("a bootstrap CI of no values is undefined")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    if statistic is np.mean:
        stats = values[idx].mean(axis=1)
    else:
        stats = np.array([statistic(values[i]) for i in idx])
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def cluster_bootstrap_ci(values, clusters, seed: int, statistic: Callable[[np.ndarray], float] = np.mean,
                         n_boot: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI resampling whole *clusters* (e.g. one test example across several seeds).

    Rows that share a cluster are not independent (the same example scored by
    models of different seeds); resampling rows would make the CI too narrow.
    """
    values = np.asarray(values, dtype=float)
    clusters = np.asarray(clusters)
    if values.size == 0:
        raise ValueError("a bootstrap CI of no values is undefined")
    if values.shape[0] != clusters.shape[0]:
        raise ValueError(f"{values.shape[0]} values but {clusters.shape[0]} cluster labels")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _, inverse = np.unique(clusters, return_inverse=True)
    k = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n_boot, k))
    if statistic is np.mean:
        sums = np.bincount(inverse, weights=values, minlength=k)
        counts = np.bincount(inverse, minlength=k).astype(float)
        stats = sums[draws].sum(1) / counts[draws].sum(1)
    else:
        members = [np.flatnonzero(inverse == c) for c in range(k)]
        stats = np.array([statistic(values[np.concatenate([members[c] for c in d])]) for d in draws])
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def hierarchical_bootstrap(values, seed: int, n_boot: int = 1000, strata=None) -> tuple[float, np.ndarray]:
    """Mean of a ``[runs, examples]`` matrix (NaN = missing) and its bootstrap distribution resampling *both*
    levels: training runs (seeds) and test examples, each with replacement.

    Resampling examples alone treats the trained models as fixed, so a CI would only generalise to new test
    rows for these particular models; resampling runs as well lets it cover the training noise (with few runs
    that part is coarse, and honest about it). With ``strata`` (one label per example) the statistic is the
    mean of the per-stratum means and examples are resampled within their stratum.
    Returns ``(estimate, draws)``.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.size == 0:
        raise ValueError(f"hierarchical_bootstrap needs a non-empty [runs, examples] matrix, got shape {v.shape}")
    runs, examples = v.shape
    labels = np.zeros(examples, dtype=int) if strata is None else np.asarray(strata)
    if labels.shape != (examples,):
        raise ValueError(f"{examples} examples but {labels.shape[0]} strata labels")
    groups = [np.flatnonzero(labels == s) for s in np.unique(labels)]
    finite = np.isfinite(v)
    filled = np.where(finite, v, 0.0)

    def statistic(rows: np.ndarray, cols_per_group: list[np.ndarray]) -> float:
        means = []
        for cols in cols_per_group:
            n = finite[np.ix_(rows, cols)].sum()
            if n:
                means.append(filled[np.ix_(rows, cols)].sum() / n)
        return float(np.mean(means)) if means else np.nan

    estimate = statistic(np.arange(runs), groups)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        rows = rng.integers(0, runs, size=runs)
        draws[b] = statistic(rows, [g[rng.integers(0, len(g), size=len(g))] for g in groups])
    return estimate, draws
