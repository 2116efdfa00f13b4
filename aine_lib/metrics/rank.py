"""Rank agreement between two importance scorings of one instance.

* :func:`kendall_tau` -- Kendall's tau-b over all tokens, with its p-value
  (Jain & Wallace's measure).
* :func:`kendall_tau_top_k` -- tau over the union of each scoring's top-k
  tokens. Full-length tau is dominated by the many unimportant tail tokens,
  whose relative order nobody cares about; this asks whether the two
  scorings agree on the tokens that either of them calls important.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"rank agreement needs two 1-D score arrays of one length, got shapes {a.shape} and {b.shape}")
    return a, b


def kendall_tau(a, b) -> tuple[float, float]:
    """``(tau_b, p_value)`` of two 1-D score arrays (scipy.stats.kendalltau); nan for constant input."""
    a, b = _pair(a, b)
    if len(a) < 2:
        return math.nan, math.nan
    res = stats.kendalltau(a, b, variant="b")
    return float(res.statistic), float(res.pvalue)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest scores; ties go to the earlier position (stable)."""
    return np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]


def kendall_tau_top_k(a, b, k: int) -> float:
    """Kendall tau-b of ``a`` and ``b`` restricted to the union of the top-``k`` positions of each.

    Returns nan when the union has fewer than 2 positions (or the restricted
    scores are constant, where tau is undefined).
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    a, b = _pair(a, b)
    union = np.union1d(top_k_indices(a, k), top_k_indices(b, k))
    if len(union) < 2:
        return math.nan
    return kendall_tau(a[union], b[union])[0]
