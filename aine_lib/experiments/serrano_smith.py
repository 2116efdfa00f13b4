"""Serrano & Smith 2019, "Is Attention Interpretable?", on the Jain & Wallace models.

* :func:`single_erasure_per_instance` / :func:`flip_table` -- erase the
  top-attended item vs a random other item: output change and decision flips.
* :func:`erasure_per_instance` / :func:`erasure_table` -- erase items in the
  order of each ranking (random, attention, gradient, attention x gradient)
  until the decision flips; how much must go?

Models: ``counter.erasure_encoders`` x ``rnn.attentions`` x ``rnn.seeds`` (all
cached by the Jain & Wallace notebooks); rows: the analysis split. Hidden
states are held fixed, as in S&S.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aine_lib.experiments.jain_wallace import RNNStudy, TrainedModel, _encoded_batches, _generator, _model_key
from aine_lib.interventions.erasure import ORDERS, fraction_until_flip, ranking_orders, single_erasure
from aine_lib.metrics.bootstrap import cluster_bootstrap_ci


def _models(study: RNNStudy):
    r = study.cfg.rnn
    for name in study.datasets:
        for encoder in study.cfg.counter.erasure_encoders:
            for attention in r.attentions:
                for seed in r.seeds:
                    yield study.train(name, encoder, attention, seed)


def _key(study: RNNStudy, m: TrainedModel) -> dict:
    return {"model": [m.dataset, m.encoder, m.attention, m.seed], "config": _model_key(study),
            "rows": study.analysis_fingerprint(m.dataset)}


def single_erasure_per_instance(study: RNNStudy) -> pd.DataFrame:
    """Per model and analysis instance: weights, JSD of the output and flips after erasing ``i*`` or random ``r``."""
    parts = []
    for m in _models(study):
        def compute(m=m) -> pd.DataFrame:
            gen = _generator(study, m, "single_erasure")
            rows = []
            for batch, hidden, attention in _encoded_batches(study, m, batch_size=256):
                out = single_erasure(m.model.decode, hidden, attention, batch.mask, gen)
                rows.append(pd.DataFrame({k: v.cpu().numpy() for k, v in out.items()}))
            df = pd.concat(rows, ignore_index=True)
            return df.assign(example=np.arange(len(df)))
        df = study.cache.get_or_compute("ss_single", _key(study, m), compute)
        parts.append(df.assign(dataset=m.dataset, encoder=m.encoder, attention=m.attention, seed=m.seed))
    return pd.concat(parts, ignore_index=True)


def flip_table(per_instance: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/erasure_flips.csv``: S&S's 2x2 table (% of instances) per model type, pooled over seeds.

    Rows with a single item are dropped (there is no random other item).
    ``jsd_top_minus_random`` is the mean paired difference of output JSD. CIs
    resample test examples with all their seeds (a cluster bootstrap: one
    example scored by several seeds' models is not several independent rows).
    """
    keys = ["dataset", "encoder", "attention"]
    rows = []
    for key, g in per_instance[per_instance["n"] > 1].groupby(keys, sort=False):
        top, rand = g["flip_top"].to_numpy(bool), g["flip_random"].to_numpy(bool)
        diff = (g["jsd_top"] - g["jsd_random"]).to_numpy()
        clusters = g["example"].to_numpy()
        lo, hi = cluster_bootstrap_ci(diff, clusters, seed=seed)
        flo, fhi = cluster_bootstrap_ci(top.astype(float), clusters, seed=seed)
        rows.append(dict(zip(keys, key)) | {
            "pct_both_flip": 100 * np.mean(top & rand), "pct_only_top_flips": 100 * np.mean(top & ~rand),
            "pct_only_random_flips": 100 * np.mean(~top & rand), "pct_neither": 100 * np.mean(~top & ~rand),
            "pct_top_flips": 100 * top.mean(), "pct_top_flips_ci_low": 100 * flo, "pct_top_flips_ci_high": 100 * fhi,
            "jsd_top_minus_random_mean": diff.mean(), "jsd_diff_ci_low": lo, "jsd_diff_ci_high": hi,
            "n": len(g), "n_examples": g["example"].nunique(), "n_seeds": g["seed"].nunique()})
    return pd.DataFrame(rows)


def erasure_per_instance(study: RNNStudy) -> pd.DataFrame:
    """Per model, ranking order and analysis instance: items removed until the decision flips."""
    parts = []
    for m in _models(study):
        def compute(m=m) -> pd.DataFrame:
            gen = _generator(study, m, "erasure_orders")
            rows = []
            start = 0
            for batch, hidden, attention in _encoded_batches(study, m, batch_size=64):
                orders = ranking_orders(m.model.decode, hidden, attention, batch.mask, gen)
                for order_name in ORDERS:
                    out = fraction_until_flip(m.model.decode, hidden, attention, batch.mask, orders[order_name])
                    df = pd.DataFrame({k: v.cpu().numpy() for k, v in out.items()})
                    rows.append(df.assign(order=order_name, example=np.arange(start, start + len(df))))
                start += len(batch)
            return pd.concat(rows, ignore_index=True)
        df = study.cache.get_or_compute("ss_erasure", _key(study, m), compute)
        parts.append(df.assign(dataset=m.dataset, encoder=m.encoder, attention=m.attention, seed=m.seed))
    return pd.concat(parts, ignore_index=True)


def erasure_table(per_instance: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/erasure.csv``: per model type and order, the fraction of items erased before the first flip.

    ``fraction_median`` (cluster-bootstrap CI over test examples) is over the
    instances whose decision flips under *this* order (so orders are compared
    on different subsets when their flip rates differ; ``frac_flipped`` gives
    the rate). ``frac_smaller_than_attention`` is S&S's comparison
    (``get_inds_where_grad_more_efficient``): over all instances, the share
    where this order flips the decision with strictly fewer items than the
    attention order, an order that flips counting as fewer than one that never
    does; ``frac_larger_than_attention`` the reverse. Single-item rows are
    dropped.
    """
    keys = ["dataset", "encoder", "attention"]
    df = per_instance[per_instance["n"] > 1]
    rows = []
    for key, g in df.groupby(keys, sort=False):
        # removed = n + 1 when the decision never flips, so "never" loses to any flip
        wide = g.pivot_table(index=["seed", "example"], columns="order", values="removed", aggfunc="first")
        for order in ORDERS:
            o = g[g["order"] == order]
            flipped = o["flipped"].astype(bool).to_numpy()
            fr = o.loc[flipped, "fraction"].to_numpy()
            if len(fr):
                lo, hi = cluster_bootstrap_ci(fr, o.loc[flipped, "example"].to_numpy(), seed=seed,
                                              statistic=np.median)
                med = float(np.median(fr))
            else:
                med = lo = hi = np.nan
            rows.append(dict(zip(keys, key)) | {
                "order": order, "fraction_median": med, "fraction_ci_low": lo, "fraction_ci_high": hi,
                "frac_flipped": flipped.mean(),
                "frac_smaller_than_attention": (wide[order] < wide["attention"]).mean(),
                "frac_larger_than_attention": (wide[order] > wide["attention"]).mean(),
                "n": len(o), "n_examples": o["example"].nunique(), "n_seeds": o["seed"].nunique()})
    return pd.DataFrame(rows)
