"""Faithfulness of the Transformer explanations by erasure (ERASER; notebook 09).

* :func:`faithfulness_per_instance` -- comprehensiveness and sufficiency per example, fraction, deletion
  mode and method (cached); :func:`faithfulness_table` summarises them with bootstrap CIs;
* :func:`per_example_aopc` and :func:`versus_random` -- each method's AOPC paired by example, and against
  the random method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from aine_lib.attribution import Explanation
from aine_lib.evaluation.faithfulness import faithfulness_curves
from aine_lib.experiments.transformers import TrainedTransformer, TransformerStudy, _batches, scores_fingerprint
from aine_lib.metrics.bootstrap import bootstrap_ci


def faithfulness_per_instance(study: TransformerStudy, m: TrainedTransformer, scores: dict[str, Explanation],
                              batch_size: int = 16) -> pd.DataFrame:
    """ERASER comprehensiveness and sufficiency per example, fraction, deletion mode and method (cached)."""
    t = study.cfg.transformer
    split = study.encoded(m.dataset, m.kind)["analysis"]
    parts = []
    for method, r in tqdm(scores.items(), desc=f"faithfulness {m.dataset}/{m.kind}", disable=not study.progress,
                          leave=False):
        def compute(method=method, r=r) -> pd.DataFrame:
            rows = []
            for start, batch in _batches(split, batch_size):
                batch = batch.to(study.device)
                B, T = batch.ids.shape
                s = torch.zeros(B, T)
                for i in range(B):
                    v = r.scores[start + i]
                    s[i, : len(v)] = torch.as_tensor(v, dtype=torch.float32)
                target = torch.as_tensor(r.target[start:start + B], device=study.device)
                df = faithfulness_curves(m.model, batch, s.to(study.device), target, fractions=t.fractions,
                                         modes=t.deletion_modes, mask_id=m.model.cfg.mask_id)
                rows.append(df.assign(example=df["example"] + start))
            return pd.concat(rows, ignore_index=True)

        # the scores themselves are in the key: a method name alone (an ensemble, the glass box) does not say
        # which scores were deleted
        key = study.model_key(m) | {"method": method, "kwargs": study.method_kwargs(method),
                                    "fractions": t.fractions, "modes": t.deletion_modes,
                                    "scores": scores_fingerprint(r)}
        df = study.cache.get_or_compute("transformer_faithfulness", key, compute)
        parts.append(df.assign(method=method))
    return pd.concat(parts, ignore_index=True).assign(dataset=m.dataset, model=m.kind, seed=m.seed)


def faithfulness_table(per_instance: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/faithfulness.csv``: dataset, model, method, mode, metric, value, ci_low, ci_high, n.

    Metrics: comprehensiveness and sufficiency at each fraction (``comp@0.05``...)
    and their AOPC (mean over fractions per example). Higher comprehensiveness
    and lower sufficiency are better. CIs bootstrap the examples.
    """
    rows = []
    keys = ["dataset", "model", "method", "mode"]
    for key, g in per_instance.groupby(keys, sort=False):
        per_example = g.groupby("example")[["comprehensiveness", "sufficiency"]].mean()
        metrics = {"aopc_comprehensiveness": per_example["comprehensiveness"].to_numpy(),
                   "aopc_sufficiency": per_example["sufficiency"].to_numpy()}
        for frac, f in g.groupby("fraction"):
            metrics[f"comprehensiveness@{frac:g}"] = f["comprehensiveness"].to_numpy()
            metrics[f"sufficiency@{frac:g}"] = f["sufficiency"].to_numpy()
        for metric, values in metrics.items():
            lo, hi = bootstrap_ci(values, seed=seed)
            rows.append(dict(zip(keys, key)) | {"metric": metric, "value": float(np.mean(values)), "ci_low": lo,
                                                "ci_high": hi, "n": len(values)})
    return pd.DataFrame(rows)


def per_example_aopc(per_instance: pd.DataFrame):
    """Per (dataset, model, mode): a wide table of each example's AOPC (the mean over fractions) with columns
    (``comprehensiveness`` | ``sufficiency``, method) -- what paired comparisons between methods read."""
    per_example = (per_instance.groupby(["dataset", "model", "mode", "method", "example"], sort=False)
                   [["comprehensiveness", "sufficiency"]].mean().reset_index())
    for key, g in per_example.groupby(["dataset", "model", "mode"], sort=False):
        yield key, g.pivot(index="example", columns="method", values=["comprehensiveness", "sufficiency"])


def versus_random(per_instance: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/faithfulness_vs_random.csv``: each method's AOPC minus the random method's, *paired* by example.

    ``comprehensiveness_gain`` = AOPC comp(method) - AOPC comp(random) (> 0 is better);
    ``sufficiency_gain`` = AOPC suff(random) - AOPC suff(method) (> 0 is better).
    Bootstrap CIs of the mean paired difference; ``beats_random`` when a CI lies above 0.
    """
    rows = []
    for (dataset, model, mode), wide in per_example_aopc(per_instance):
        if "random" not in wide["comprehensiveness"]:
            continue
        for method in wide["comprehensiveness"].columns:
            if method == "random":
                continue
            row = {"dataset": dataset, "model": model, "mode": mode, "method": method}
            for metric, sign in (("comprehensiveness", 1.0), ("sufficiency", -1.0)):
                diff = (sign * (wide[metric][method] - wide[metric]["random"])).dropna().to_numpy()
                lo, hi = bootstrap_ci(diff, seed=seed) if len(diff) else (np.nan, np.nan)
                row |= {f"{metric}_gain": float(diff.mean()) if len(diff) else np.nan,
                        f"{metric}_gain_ci_low": lo, f"{metric}_gain_ci_high": hi,
                        f"{metric}_beats_random": bool(lo > 0)}
            row["n"] = int(len(wide))
            rows.append(row)
    return pd.DataFrame(rows)
