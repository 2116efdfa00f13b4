"""Explanation ensembles and seed stability (notebook 17).

* :func:`explanation_ensembles` -- the normalised mean and the rank mean of
  several methods, as new methods (are they more faithful than their members?);
  :func:`seed_stability` -- how much each method's explanation of the same
  input changes between models that differ only in their training seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from aine_lib.attribution import Explanation
from aine_lib.experiments.transformer_faithfulness import per_example_aopc
from aine_lib.experiments.transformers import TransformerStudy, attributions, content_positions
from aine_lib.metrics.bootstrap import bootstrap_ci
from aine_lib.metrics.rank import kendall_tau
from aine_lib.models.transformer_training import EncodedSplit


# ----- ensembles ----------------------------------------------------------------------------------------

def explanation_ensembles(scores: dict[str, Explanation], members: tuple[str, ...], split: EncodedSplit
                          ) -> dict[str, Explanation]:
    """Two ensembles of ``members`` as new methods (same result shape as an attribution method):

    * ``ensemble_mean``: per example, each member's scores divided by their largest absolute value over the
      content tokens, then averaged (signs kept: evidence for and against the predicted class cancel);
    * ``ensemble_rank``: the mean over members of each token's rank (0 = lowest score, 1 = highest) among the
      content tokens.

    Special tokens get 0 in both (they are never erased or attributed).
    """
    missing = [m for m in members if m not in scores]
    if missing:
        raise ValueError(f"ensemble members {missing} have no scores; compute them first (available: {sorted(scores)})")
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {list(members)}")
    positions = content_positions(split)
    target = scores[members[0]].target
    mean_scores, rank_scores = [], []
    for i, pos in enumerate(positions):
        n = len(scores[members[0]].scores[i])
        mean, rank = np.zeros(n), np.zeros(n)
        if len(pos):
            for name in members:
                v = np.asarray(scores[name].scores[i], dtype=float)[pos]
                scale = np.abs(v).max()
                mean[pos] += (v / scale if scale > 0 else v) / len(members)
                rank[pos] += ((rankdata(v) - 1) / max(len(pos) - 1, 1)) / len(members)
        mean_scores.append(mean)
        rank_scores.append(rank)
    seconds = float(sum(scores[name].seconds for name in members))
    model = scores[members[0]].model
    return {name: Explanation(name, model, s, list(target), seconds=seconds, signed=name == "ensemble_mean",
                              options={"members": list(members)})
            for name, s in (("ensemble_mean", mean_scores), ("ensemble_rank", rank_scores))}


def seed_stability(study: TransformerStudy, dataset: str, kind: str, seeds: tuple[int, ...],
                   methods: tuple[str, ...], seed: int = 0) -> pd.DataFrame:
    """Per method: mean Kendall tau between the explanations of the same analysis examples by models trained
    with different seeds (every pair of seeds; content tokens; CI resampling examples), next to how often the
    seeds' models predict the same class."""
    if len(seeds) < 2:
        raise ValueError(f"seed stability needs at least 2 seeds, got {list(seeds)}")
    models = [study.train(dataset, kind, s) for s in seeds]
    per_seed = [attributions(study, m, methods) for m in models]
    positions = content_positions(study.encoded(dataset, kind)["analysis"])
    pairs = [(a, b) for a in range(len(seeds)) for b in range(a + 1, len(seeds))]
    rows = []
    for method in methods:
        per_example = []
        for i, pos in enumerate(positions):
            if len(pos) < 2:
                continue
            taus = [kendall_tau(per_seed[a][method].scores[i][pos], per_seed[b][method].scores[i][pos])[0]
                    for a, b in pairs]
            per_example.append(np.nanmean(taus) if np.isfinite(taus).any() else np.nan)
        v = np.asarray(per_example, dtype=float)
        v = v[np.isfinite(v)]
        lo, hi = bootstrap_ci(v, seed=seed) if len(v) else (np.nan, np.nan)
        same = np.mean([(per_seed[a][method].target == per_seed[b][method].target).mean() for a, b in pairs])
        rows.append({"dataset": dataset, "model": kind, "method": method, "seeds": len(seeds),
                     "tau_between_seeds": float(v.mean()) if len(v) else np.nan, "ci_low": lo, "ci_high": hi,
                     "same_prediction": float(same), "n": len(v)})
    return pd.DataFrame(rows)


def ensemble_vs_best_member(per_instance: pd.DataFrame, members: tuple[str, ...],
                            ensembles: tuple[str, ...] = ("ensemble_mean", "ensemble_rank"),
                            seed: int = 0) -> pd.DataFrame:
    """Is an ensemble more faithful than its best member? Paired by example, per data set, model and mode.

    Per example, AOPC comprehensiveness and sufficiency (the mean over fractions, as in
    :func:`~aine_lib.experiments.transformers.versus_random`). The best member is the one with the best mean
    over these same examples (highest comprehensiveness, lowest sufficiency), which favours the member
    (its lead is partly selection noise), so the test is conservative for the ensemble. ``gain`` is the mean
    paired difference signed so that > 0 means the ensemble is better, with a bootstrap CI;
    ``verdict`` is ``better`` / ``worse`` when the CI excludes 0, else ``no_difference``.
    """
    missing = [m for m in (*members, *ensembles) if m not in set(per_instance["method"])]
    if missing:
        raise ValueError(f"no faithfulness rows for {missing}; score the members and the ensembles first")

    rows = []
    for (dataset, model, mode), wide in per_example_aopc(per_instance):
        for metric, sign in (("comprehensiveness", 1.0), ("sufficiency", -1.0)):
            table = wide[metric]
            means = table[list(members)].mean()
            best = str(means.idxmax() if sign > 0 else means.idxmin())
            for ens in ensembles:
                diff = (sign * (table[ens] - table[best])).dropna().to_numpy()
                lo, hi = bootstrap_ci(diff, seed=seed) if len(diff) else (np.nan, np.nan)
                rows.append({"dataset": dataset, "model": model, "mode": mode, "metric": f"aopc_{metric}",
                             "ensemble": ens, "ensemble_value": float(table[ens].mean()), "best_member": best,
                             "best_member_value": float(table[best].mean()),
                             "gain": float(diff.mean()) if len(diff) else np.nan, "gain_ci_low": lo,
                             "gain_ci_high": hi,
                             "verdict": "better" if lo > 0 else ("worse" if hi < 0 else "no_difference"),
                             "n": len(diff)})
    return pd.DataFrame(rows)


def ensembles_table(faithfulness: pd.DataFrame, stability: pd.DataFrame, mode: str = "remove") -> pd.DataFrame:
    """``tables/ensembles.csv``: part (``explanation_ensemble`` / ``seed_stability``), dataset, model, method,
    metric, value, ci_low, ci_high, n. The ensemble part keeps the AOPC rows of one deletion ``mode``."""
    f = faithfulness[(faithfulness["mode"] == mode) & faithfulness["metric"].str.startswith("aopc")]
    parts = [f.assign(part="explanation_ensemble")[["part", "dataset", "model", "method", "metric", "value",
                                                     "ci_low", "ci_high", "n"]]]
    if len(stability):
        parts.append(stability.assign(part="seed_stability", metric="tau_between_seeds",
                                      value=stability["tau_between_seeds"])[
            ["part", "dataset", "model", "method", "metric", "value", "ci_low", "ci_high", "n"]])
    return pd.concat(parts, ignore_index=True)
