"""Faithfulness arithmetic of token-importance scores (DeYoung et al. 2020, ERASER), plausibility and agreement.

ERASER's faithfulness metrics
-----------------------------
An explanation method gives each token of an input ``x`` a score. Take the
``k`` highest-scoring tokens as the *rationale* ``r_k`` and let ``p(.)`` be the
model's probability of the explained (target) class. ERASER (DeYoung et al.
2020, "ERASER: A Benchmark to Evaluate Rationalized NLP Models", section 4)
defines

* **comprehensiveness** ``= p(x) - p(x \\ r_k)``: how much the prediction drops
  when the rationale is deleted. High is good: the tokens the method calls
  important were needed.
* **sufficiency** ``= p(x) - p(r_k)``: how much the prediction drops when
  *only* the rationale is kept. Low (even negative) is good: the rationale
  alone supports the prediction.

Because a rationale length must be chosen, both are computed for ``k`` equal to
a set of fractions of the tokens, ``ceil(f * n)`` for ``f`` in ``B = {1%, 5%,
10%, 20%, 50%}`` (ERASER's bins), and summarised by the **AOPC** (area over the
perturbation curve), here the mean over the fractions (as in ``ferret``;
ERASER's formula writes ``1 / (|B| + 1)`` with an extra ``k = 0`` term,
which is 0 for comprehensiveness). Special tokens ([CLS], [SEP]) are never
part of a rationale, never counted in ``n`` and never erased. Random scores
are the floor every method is read against.

Pure functions on tensors and tables: :func:`top_k_mask` (the rationale), :func:`aopc`,
:func:`summarise` (bootstrap CIs), and, for the plausibility and agreement analyses,
:func:`plausibility_auprc` and :func:`rank_agreement_matrix`. The curves themselves, which
run a model on erased inputs, are :func:`~aine_lib.evaluation.faithfulness.faithfulness_curves`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score

from aine_lib.metrics.bootstrap import bootstrap_ci, cluster_bootstrap_ci
from aine_lib.metrics.rank import kendall_tau

#: ERASER's rationale-length bins, as fractions of the real non-special tokens.
FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)
#: Columns of :func:`~aine_lib.evaluation.faithfulness.faithfulness_curves` that vary with the fraction
#: (everything else identifies an example).
_PER_FRACTION = ("fraction", "k", "comprehensiveness", "sufficiency", "p_without_top_k", "p_only_top_k")
METRICS = ("comprehensiveness", "sufficiency")

__all__ = ["FRACTIONS", "METRICS", "aopc", "plausibility_auprc", "rank_agreement_matrix", "summarise", "top_k_mask"]


# ----- rationales --------------------------------------------------------------

def _check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fractions must be in (0, 1], got {fraction}")
    return fraction


def top_k_mask(scores: torch.Tensor, mask: torch.Tensor, special: torch.Tensor | None,
               fraction: float) -> torch.Tensor:
    """Bool ``[B, T]``: per row the ``ceil(fraction * n)`` highest-scoring real, non-special tokens.

    ``n`` is the number of real (``mask``) non-``special`` tokens of the row;
    ``k = max(1, ceil(fraction * n))`` (0 only for a row with ``n == 0``).
    Ties are broken by position (the earlier token wins), so the result is
    deterministic. ``fraction * n`` is computed with a ``1e-9`` tolerance so
    that, e.g., ``0.07 * 100`` gives ``k = 7``, not 8.
    """
    if scores.shape != mask.shape or mask.dtype != torch.bool:
        raise ValueError(f"scores {tuple(scores.shape)} and a bool mask of the same shape are needed, "
                         f"got mask {mask.dtype} {tuple(mask.shape)}")
    fraction = _check_fraction(fraction)
    eligible = mask if special is None else mask & ~special.to(torch.bool)
    scores = scores.detach().to(torch.float64)
    if bool(torch.isnan(scores[eligible]).any()):
        raise ValueError("scores are NaN at some real tokens; a top-k rationale is undefined")
    n = eligible.sum(-1)
    k = torch.ceil(fraction * n.to(torch.float64) - 1e-9).long().clamp_min(1)
    k = torch.minimum(k, n)
    # Lexicographic order (eligible first, then score descending, then position) by two stable sorts.
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    order = order.gather(1, torch.sort((~eligible.gather(1, order)).long(), dim=-1, stable=True).indices)
    rank_selected = torch.arange(scores.shape[1], device=scores.device)[None] < k[:, None]
    return torch.zeros_like(eligible).scatter(1, order, rank_selected)


# ----- summaries ---------------------------------------------------------------------

def aopc(df: pd.DataFrame) -> pd.DataFrame:
    """ERASER's AOPC: per example and mode, the mean over fractions of comprehensiveness and sufficiency.

    Groups by ``example``, ``mode`` and every other column that is not a
    per-fraction column of :func:`~aine_lib.evaluation.faithfulness.faithfulness_curves` (e.g. ``method`` or
    ``seed`` added by the caller before concatenating). A NaN at any fraction
    makes that example's AOPC NaN (a mean over fewer fractions would not be
    comparable). Returns the keys, ``n_tokens``, ``p_full``, ``n_fractions``,
    ``comprehensiveness`` and ``sufficiency``.
    """
    missing = {"example", "mode", "fraction", *METRICS} - set(df.columns)
    if missing:
        raise ValueError(f"aopc needs the columns of faithfulness_curves; missing {sorted(missing)}")
    keys = [c for c in df.columns if c not in _PER_FRACTION and c not in ("n_tokens", "p_full")]
    if df.duplicated(keys + ["fraction"]).any():
        raise ValueError(f"several rows per {keys + ['fraction']}; add a column that tells them apart "
                         "(e.g. method) before calling aopc")
    grouped = df.groupby(keys, sort=False, dropna=False)
    out = grouped.agg(n_tokens=("n_tokens", "first"), p_full=("p_full", "first"),
                      n_fractions=("fraction", "nunique"),
                      comprehensiveness=("comprehensiveness", lambda s: s.mean(skipna=False)),
                      sufficiency=("sufficiency", lambda s: s.mean(skipna=False)))
    return out.reset_index()


def summarise(df: pd.DataFrame, keys: Sequence[str], seed: int, clusters: str | None = None,
              metrics: Sequence[str] = METRICS, n_boot: int = 1000, level: float = 0.95) -> pd.DataFrame:
    """Mean and percentile-bootstrap CI of each metric column per group of ``keys``.

    Returns ``keys..., metric, value, ci_low, ci_high, n`` (``n``: non-NaN
    rows used; NaN rows are dropped). With ``clusters`` (a column name, e.g.
    ``example`` when several seeds score the same example) whole clusters are
    resampled (:func:`~aine_lib.metrics.bootstrap.cluster_bootstrap_ci`).
    Every group is bootstrapped with the same ``seed``.
    """
    keys = list(keys)
    needed = set(keys) | set(metrics) | ({clusters} if clusters else set())
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"summarise: missing columns {sorted(missing)}")
    rows = []
    groups = df.groupby(keys, sort=True, dropna=False) if keys else [((), df)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            ok = group[metric].notna()
            values = group.loc[ok, metric].to_numpy(dtype=float)
            row = dict(zip(keys, key), metric=metric, n=int(len(values)))
            if len(values) == 0:
                row |= {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan}
            else:
                if clusters:
                    lo, hi = cluster_bootstrap_ci(values, group.loc[ok, clusters].to_numpy(), seed,
                                                  n_boot=n_boot, level=level)
                else:
                    lo, hi = bootstrap_ci(values, seed, n_boot=n_boot, level=level)
                row |= {"value": float(values.mean()), "ci_low": lo, "ci_high": hi}
            rows.append(row)
    return pd.DataFrame(rows, columns=keys + ["metric", "value", "ci_low", "ci_high", "n"])


# ----- plausibility and agreement ----------------------------------------------------------

def plausibility_auprc(scores: Sequence[np.ndarray], rationales: Sequence[np.ndarray]) -> np.ndarray:
    """Per-example average precision (area under the precision-recall curve) of ``scores`` against a
    binary human/planted rationale mask of the same length (real, non-special tokens only).

    NaN where the rationale is all 0 or all 1 (AP is undefined or trivially 1).
    """
    if len(scores) != len(rationales):
        raise ValueError(f"{len(scores)} score arrays but {len(rationales)} rationales")
    out = np.full(len(scores), np.nan)
    for i, (s, r) in enumerate(zip(scores, rationales)):
        s = np.asarray(s, dtype=float).ravel()
        r = np.asarray(r).ravel()
        if s.shape != r.shape:
            raise ValueError(f"example {i}: {s.shape[0]} scores but a rationale of {r.shape[0]} tokens")
        if not np.isin(r, (0, 1)).all():
            raise ValueError(f"example {i}: the rationale must be binary (0/1 or bool)")
        r = r.astype(int)
        if r.min() == r.max():
            continue
        if not np.isfinite(s).all():
            raise ValueError(f"example {i}: scores must be finite")
        out[i] = average_precision_score(r, s)
    return out


def rank_agreement_matrix(results: dict[str, Sequence[np.ndarray]]) -> pd.DataFrame:
    """Mean Kendall tau-b (:func:`~aine_lib.metrics.rank.kendall_tau`) between every pair of methods.

    ``results`` maps a method name to its per-example 1-D score arrays (the
    same examples, in the same order, with the same lengths, for every
    method). Examples where tau is undefined (constant scores, fewer than 2
    tokens) are skipped in the mean; a pair with no defined tau is NaN. The
    diagonal is 1. Returns a symmetric methods x methods DataFrame.
    """
    names = list(results)
    if not names:
        raise ValueError("no methods given")
    n_examples = {len(v) for v in results.values()}
    if len(n_examples) != 1:
        raise ValueError(f"methods have different numbers of examples: "
                         f"{ {k: len(v) for k, v in results.items()} }")
    matrix = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            taus = np.array([kendall_tau(x, y)[0] for x, y in zip(results[a], results[b])], dtype=float)
            taus = taus[~np.isnan(taus)]
            matrix[i, j] = matrix[j, i] = taus.mean() if len(taus) else math.nan
    return pd.DataFrame(matrix, index=pd.Index(names, name="method"), columns=pd.Index(names, name="method"))
