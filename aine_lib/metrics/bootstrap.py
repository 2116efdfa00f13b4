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
