"""Statistics of the scaling grids (notebook 14): :func:`scaling_table`, :func:`paired_tests`, :func:`point_times`.

CIs resample trained models (seeds) and test examples
(:func:`~aine_lib.metrics.bootstrap.hierarchical_bootstrap`); attention is compared with the best
non-attention method *paired by example*, with an effect size (d_z) and Benjamini-Hochberg q-values over
every test in the table. See :mod:`aine_lib.experiments.scaling` for the grids and what each point measures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from aine_lib.config import StudyConfig
from aine_lib.experiments.scaling import LOWER_IS_BETTER, METRICS, ScalingPoint, length_strata
from aine_lib.metrics.bootstrap import hierarchical_bootstrap


def _point_columns(point: ScalingPoint) -> dict:
    return {"grid": point.grid, "family": point.family, "dataset": point.dataset, "fraction": point.fraction,
            "layers": point.layers, "hidden": point.hidden}


def _groups(results: list[dict]) -> dict[tuple, list[dict]]:
    """Results of the same point but for the seed, in seed order."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        p = r["point"]
        groups.setdefault((p.grid, p.family, p.dataset, p.fraction, p.layers, p.hidden), []).append(r)
    return groups


def _best_other(methods: pd.DataFrame, others: tuple[str, ...], metric: str) -> str | None:
    """The non-attention method with the best mean ``metric`` at one point (``loo`` is excluded from tau
    metrics, where it is the reference)."""
    candidates = [m for m in others if not (metric.startswith("tau") and m == "loo")]
    means = methods[methods["method"].isin(candidates)].groupby("method")[metric].mean().dropna()
    if means.empty:
        return None
    return str(means.idxmin() if metric in LOWER_IS_BETTER else means.idxmax())


def _two_level(df: pd.DataFrame, column: str, seed: int, stratified: bool = False) -> tuple[float, float, float]:
    """Estimate and 95 % CI of ``column`` resampling seeds and examples (:func:`hierarchical_bootstrap`)."""
    matrix = df.pivot_table(index="seed", columns="example", values=column, aggfunc="mean", dropna=False)
    strata = None
    if stratified:
        strata = df.groupby("example")["stratum"].first().reindex(matrix.columns).to_numpy()
    value, draws = hierarchical_bootstrap(matrix.to_numpy(), seed=seed, strata=strata)
    draws = draws[np.isfinite(draws)]
    lo, hi = np.quantile(draws, [0.025, 0.975]) if len(draws) else (np.nan, np.nan)
    return value, float(lo), float(hi)


def scaling_table(results: list[dict], cfg: StudyConfig, seed: int = 0) -> pd.DataFrame:
    """``tables/scaling_data.csv`` / ``scaling_model.csv``: one row per point x method x metric.

    Columns: grid, family, dataset, fraction, layers, hidden, train_examples, method, role (``model`` for
    accuracy, ``attention``, ``other``), best_other (True on the non-attention method with the best value of
    that metric at that point), metric, value, ci_low, ci_high (examples resampled as clusters across seeds;
    ``tau_loo_length_std`` resampled within word-length strata), seed_sd (sd of the per-seed means),
    n_examples, n_seeds. CIs resample both seeds and test examples (:func:`hierarchical_bootstrap`), so they
    cover training noise as well as the choice of test rows; with 3 seeds the seed part is coarse.
    """
    s = cfg.scaling
    rows = []
    for _, group in _groups(results).items():
        p = group[0]["point"]
        base = _point_columns(p) | {"train_examples": int(np.mean([r["train_examples"] for r in group]))}
        acc = pd.concat([r["accuracy"].assign(seed=r["point"].seed) for r in group], ignore_index=True)
        value, lo, hi = _two_level(acc, "correct", seed)
        per_seed = acc.groupby("seed")["correct"].mean()
        rows.append(base | {"method": "", "role": "model", "best_other": False, "metric": "accuracy",
                            "value": value, "ci_low": lo, "ci_high": hi,
                            "seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else np.nan,
                            "n_examples": int(acc["example"].nunique()), "n_seeds": len(group)})
        per = pd.concat([r["methods"].assign(seed=r["point"].seed) for r in group], ignore_index=True)
        strata_of = dict(zip(per["example"], length_strata(per["length_words"].to_numpy(), s.length_bins)))
        per["stratum"] = per["example"].map(strata_of)
        best = {metric: _best_other(per, s.other_methods, metric.replace("_length_std", "")) for metric in METRICS}
        for method, g in per.groupby("method", sort=False):
            role = "other" if method in s.other_methods else "attention"
            for metric in METRICS:
                column = "tau_loo" if metric == "tau_loo_length_std" else metric
                v = g[column].to_numpy(dtype=float)
                ok = np.isfinite(v)
                if not ok.any():
                    continue
                value, lo, hi = _two_level(g, column, seed, stratified=metric == "tau_loo_length_std")
                seed_means = g[ok].groupby("seed")[column].mean()
                rows.append(base | {"method": method, "role": role, "best_other": best[metric] == method,
                                    "metric": metric, "value": value, "ci_low": lo, "ci_high": hi,
                                    "seed_sd": float(seed_means.std(ddof=1)) if len(seed_means) > 1 else np.nan,
                                    "n_examples": int(g.loc[ok, "example"].nunique()), "n_seeds": len(group)})
    return pd.DataFrame(rows)


def paired_tests(results: list[dict], cfg: StudyConfig, metrics: tuple[str, ...] = ("aopc_comprehensiveness",
                 "aopc_sufficiency", "tau_top_k_loo"), seed: int = 0, n_boot: int = 2000) -> pd.DataFrame:
    """Attention vs the best non-attention method at every point, paired by example.

    ``diff = attention - best`` per seed and example, signed so that > 0 means attention is better; the CI
    and p-value resample seeds and examples (:func:`hierarchical_bootstrap`), d_z uses the per-example
    differences averaged over seeds. Reports the mean difference with a bootstrap CI, the
    effect size d_z = mean / sd of the differences, a two-sided bootstrap p-value, and Benjamini-Hochberg
    q-values over every row of the table (``significant``: q < 0.05). The best method is picked on the same
    examples, which flatters it: a ``significant`` win for attention is conservative, a loss slightly
    overstated.
    """
    s = cfg.scaling
    rows = []
    for _, group in _groups(results).items():
        p = group[0]["point"]
        per = pd.concat([r["methods"].assign(seed=r["point"].seed) for r in group], ignore_index=True)
        mean = per.groupby(["method", "example"])[list(metrics)].mean().reset_index()
        for metric in metrics:
            best = _best_other(per, s.other_methods, metric)
            if best is None:
                continue
            sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
            wide = mean.pivot(index="example", columns="method", values=metric)
            cells = per.pivot_table(index=["seed", "example"], columns="method", values=metric, aggfunc="mean")
            for method in [m for m in wide.columns if m not in s.other_methods]:
                diff = (sign * (wide[method] - wide[best])).dropna().to_numpy()
                if len(diff) < 2:
                    continue
                by_seed = (sign * (cells[method] - cells[best])).unstack("example")      # [seeds, examples]
                _, boot = hierarchical_bootstrap(by_seed.to_numpy(), seed=seed, n_boot=n_boot)
                boot = boot[np.isfinite(boot)]
                lo, hi = np.quantile(boot, [0.025, 0.975])
                # percentile-bootstrap p-value (the CI inverted): the share of draws on the other side of 0
                p_value = min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean()) + 1 / n_boot)
                sd = diff.std(ddof=1)
                rows.append(_point_columns(p) | {"metric": metric, "attention_method": method, "best_other": best,
                                                 "attention_value": float(wide[method].mean()),
                                                 "best_other_value": float(wide[best].mean()),
                                                 "difference": float(diff.mean()), "ci_low": float(lo),
                                                 "ci_high": float(hi),
                                                 "effect_size_dz": float(diff.mean() / sd) if sd > 0 else np.nan,
                                                 "p_value": float(p_value), "n_examples": len(diff),
                                                 "n_seeds": len(group)})
    out = pd.DataFrame(rows)
    if len(out):
        out["q_value"] = false_discovery_control(out["p_value"].to_numpy())
        out["significant"] = out["q_value"] < 0.05
        out["verdict"] = np.where(~out["significant"], "no_difference",
                                  np.where(out["difference"] > 0, "attention_better", "attention_worse"))
    return out


def point_times(results: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{**_point_columns(r["point"]), "seed": r["point"].seed,
                          "train_examples": r["train_examples"], "seconds": r["seconds"]} for r in results])
