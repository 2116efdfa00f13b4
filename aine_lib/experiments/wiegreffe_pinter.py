"""Wiegreffe & Pinter 2019, "Attention is not not Explanation", on the Jain & Wallace models.

Each experiment is a pure function of an :class:`~aine_lib.experiments.jain_wallace.RNNStudy`
returning a tidy DataFrame; every model comes from the parameter-keyed cache.

* :func:`uniform_runs` / :func:`uniform_baseline_table` -- is attention needed
  at all? The same models trained with attention frozen to uniform.
* :func:`seed_variance_per_instance` -- how far apart (JSD) are the attentions
  of models that differ only in their seed? The yardstick for "an adversary
  found a very different attention".
* :func:`adversary_per_instance` / :func:`tradeoff_table` -- the
  model-consistent adversary for every lambda: TVD to the base predictions vs
  JSD to the base attention, next to the seed-variance points.
* :func:`diagnostic_runs` / :func:`diagnostic_table` -- a context-free model
  (the Average encoder) given attention from a guide: uniform, its own
  learned attention, the trained base model, the adversary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aine_lib.experiments.jain_wallace import RNNStudy, _model_key
from aine_lib.metrics.bootstrap import bootstrap_ci
from aine_lib.models.counter import compare_with_base, trained_consistent_adversary, trained_guided_classifier
from aine_lib.models.rnn_attention import RNNClassifierConfig
from aine_lib.models.training import TrainConfig, evaluate


def _train_cfg(study: RNNStudy):
    r = study.cfg.rnn
    return TrainConfig(epochs=r.epochs, batch_size=r.batch_size, lr=r.lr, weight_decay=r.weight_decay,
                       max_length=r.max_length, patience=r.patience)


def _base_key(study: RNNStudy, dataset: str, encoder: str, attention: str, seed: int) -> dict:
    return {"model": [dataset, encoder, attention, seed], "config": _model_key(study)}


def adversary_seed(study: RNNStudy) -> int:
    """The adversary's seed: the first *comparison* seed, not the base model's.

    With the base seed the adversary would start from the base model's exact
    initial weights and see the same batch order, so a small JSD at low lambda
    would partly be shared initialisation. With the first other seed, the
    lambda = 0 adversary and that seed's model differ only in their objective
    (match the base model's outputs vs fit the gold labels).
    """
    return study.cfg.counter.variance_seeds[1]


def _test_metrics(model, study: RNNStudy, dataset: str) -> dict:
    data, vocab, _ = study.prepared(dataset)
    test = evaluate(model, data.test, vocab, study.device, max_length=study.cfg.rnn.max_length)
    return {"test_accuracy": test["accuracy"], "test_f1": test["f1"], "n_test": test["n"]}


# ----- uniform attention baseline (W&P section 3.1) --------------------------------

def uniform_runs(study: RNNStudy) -> pd.DataFrame:
    """One row per (dataset, encoder, seed) of the frozen-uniform model: best epoch and test metrics."""
    rows = []
    for name in study.datasets:
        for encoder in study.cfg.rnn.encoders:
            for seed in study.cfg.rnn.seeds:
                m = study.train(name, encoder, "additive", seed, uniform_attention=True)
                rows.append({"dataset": name, "encoder": encoder, "attention": "uniform", "seed": seed,
                             "best_epoch": m.best_epoch} | _test_metrics(m.model, study, name))
    return pd.DataFrame(rows)


def uniform_baseline_table(trained: pd.DataFrame, uniform: pd.DataFrame) -> pd.DataFrame:
    """``tables/uniform_baseline.csv``: test F1 over seeds for trained and uniform attention, and the gap.

    ``trained`` is :func:`~aine_lib.experiments.jain_wallace.performance_runs`.
    ``f1_gap_*`` is trained minus uniform, paired by seed (mean, sd, min over
    seeds): a gap whose range includes 0 means attention was not needed.
    """
    cols = ["dataset", "encoder", "attention", "seed", "test_f1", "test_accuracy"]
    both = pd.concat([trained[cols], uniform[cols]], ignore_index=True)
    rows = []
    for (dataset, encoder, attention), g in both.groupby(["dataset", "encoder", "attention"], sort=False):
        row = {"dataset": dataset, "encoder": encoder, "attention": attention,
               "test_f1_mean": g["test_f1"].mean(), "test_f1_std": g["test_f1"].std(ddof=1),
               "test_accuracy_mean": g["test_accuracy"].mean(), "n_seeds": len(g)}
        if attention != "uniform":
            u = uniform[(uniform["dataset"] == dataset) & (uniform["encoder"] == encoder)].set_index("seed")
            gap = (g.set_index("seed")["test_f1"] - u["test_f1"]).dropna()
            row |= {"f1_gap_mean": gap.mean(), "f1_gap_std": gap.std(ddof=1), "f1_gap_min": gap.min(),
                    "f1_gap_max": gap.max()}
        rows.append(row)
    return pd.DataFrame(rows)


# ----- seed variance (W&P section 3.2) ----------------------------------------------

def seed_variance_per_instance(study: RNNStudy) -> pd.DataFrame:
    """Per analysis instance and seed: TVD/JSD between each other-seed model and the base (first seed) model.

    W&P plot, per instance, the *median over seeds*; see :func:`median_over_seeds`.
    """
    c = study.cfg.counter
    base_seed, *others = c.variance_seeds
    parts = []
    for name in study.datasets:
        _, vocab, _ = study.prepared(name)
        df = study.analysis_split(name)
        for encoder in c.encoders:
            for attention in c.attentions:
                base = study.train(name, encoder, attention, base_seed).model
                for seed in others:
                    other = study.train(name, encoder, attention, seed).model
                    cmp = compare_with_base(other, base, df, vocab, study.device, study.cfg.rnn.max_length)
                    parts.append(cmp.assign(dataset=name, encoder=encoder, attention=attention, seed=seed))
    return pd.concat(parts, ignore_index=True)


def median_over_seeds(per_instance: pd.DataFrame) -> pd.DataFrame:
    """One row per instance: the median over the other seeds of TVD and JSD to the base model (W&P Fig. 3)."""
    keys = ["dataset", "encoder", "attention", "example"]
    return per_instance.groupby(keys, sort=False)[["tvd", "jsd"]].median().reset_index()


# ----- model-consistent adversary (W&P section 4) --------------------------------------

def adversary_per_instance(study: RNNStudy) -> pd.DataFrame:
    """Per lambda and analysis instance: TVD/JSD between the trained adversary and its base model.

    Also returns, per model, the chosen epoch and the dev objective's parts in
    ``attrs["history"]`` (one row per dataset x encoder x attention x lambda x epoch).
    """
    c = study.cfg.counter
    base_seed = c.variance_seeds[0]
    parts, histories = [], []
    for name in study.datasets:
        data, vocab, emb = study.prepared(name)
        df = study.analysis_split(name)
        for encoder in c.encoders:
            for attention in c.attentions:
                base = study.train(name, encoder, attention, base_seed).model
                model_cfg = RNNClassifierConfig(encoder=encoder, attention=attention, vocab_size=len(vocab),
                                                embed_dim=emb.shape[1], hidden_dim=study.cfg.rnn.hidden_dim,
                                                n_classes=len(data.label_names))
                for lam in c.adversary_lambdas:
                    adversary, result = trained_consistent_adversary(
                        study.cache, data, model_cfg, base, _base_key(study, name, encoder, attention, base_seed),
                        lam, _train_cfg(study), adversary_seed(study), study.device, embeddings=emb,
                        progress=study.progress)
                    cmp = compare_with_base(adversary, base, df, vocab, study.device, study.cfg.rnn.max_length)
                    ids = dict(dataset=name, encoder=encoder, attention=attention, adversary_lambda=lam)
                    parts.append(cmp.assign(**ids, best_epoch=result.best_epoch))
                    histories.append(result.history.assign(**ids))
    out = pd.concat(parts, ignore_index=True)
    out.attrs["history"] = pd.concat(histories, ignore_index=True)
    return out


def _mean_ci(values: np.ndarray, seed: int) -> tuple[float, float, float]:
    lo, hi = bootstrap_ci(values, seed=seed)
    return float(np.mean(values)), lo, hi


def tradeoff_table(adversary: pd.DataFrame, seeds: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/adversary_tradeoff.csv``: mean TVD and JSD (bootstrap CIs) per adversary lambda and per seed.

    ``kind`` is ``adversary`` (one row per lambda) or ``seed`` (one row per
    other-seed model); ``accuracy`` is the model's own test accuracy on the
    analysis rows, ``base_accuracy`` the base model's.
    """
    rows = []
    keys = ["dataset", "encoder", "attention"]
    for kind, df, by in (("adversary", adversary, "adversary_lambda"), ("seed", seeds, "seed")):
        for key, g in df.groupby(keys + [by], sort=False):
            tvd, tlo, thi = _mean_ci(g["tvd"].to_numpy(), seed)
            jsd, jlo, jhi = _mean_ci(g["jsd"].to_numpy(), seed)
            rows.append(dict(zip(keys, key[:3])) | {
                "kind": kind, "adversary_lambda": key[3] if kind == "adversary" else np.nan,
                "seed": key[3] if kind == "seed" else np.nan,
                "tvd_mean": tvd, "tvd_ci_low": tlo, "tvd_ci_high": thi,
                "jsd_mean": jsd, "jsd_ci_low": jlo, "jsd_ci_high": jhi,
                "accuracy": g["correct"].mean(), "base_accuracy": g["base_correct"].mean(), "n": len(g)})
    return pd.DataFrame(rows)


# ----- the diagnostic (W&P section 5) ----------------------------------------------------

GUIDES = ("uniform", "own", "trained", "adversary")


def diagnostic_runs(study: RNNStudy) -> pd.DataFrame:
    """Test metrics of the context-free Average model with attention from each guide, per student seed.

    * ``uniform``: the Average model trained with attention frozen to uniform;
    * ``own``: the Average model with its own learned attention (J&W's model);
    * ``trained``: attention of the base model (first ``counter.variance_seeds``
      seed) of each ``counter.encoders x counter.attentions``;
    * ``adversary``: attention of that base model's model-consistent adversary
      at ``counter.diagnostic_adversary_lambda``.
    Students are trained for every ``rnn.seeds`` seed; guides stay fixed.
    """
    c, r = study.cfg.counter, study.cfg.rnn
    base_seed = c.variance_seeds[0]
    rows = []
    for name in study.datasets:
        data, vocab, emb = study.prepared(name)
        student_cfg = RNNClassifierConfig(encoder="average", attention="additive", vocab_size=len(vocab),
                                          embed_dim=emb.shape[1], hidden_dim=r.hidden_dim,
                                          n_classes=len(data.label_names), uniform_attention=True)
        for seed in r.seeds:
            m = study.train(name, "average", "additive", seed, uniform_attention=True)
            rows.append({"dataset": name, "guide": "uniform", "guide_model": "-", "seed": seed}
                        | _test_metrics(m.model, study, name))
            for attention in c.attentions:
                m = study.train(name, "average", attention, seed)
                rows.append({"dataset": name, "guide": "own", "guide_model": f"average-{attention}", "seed": seed}
                            | _test_metrics(m.model, study, name))
        for encoder in c.encoders:
            for attention in c.attentions:
                key = _base_key(study, name, encoder, attention, base_seed)
                base = study.train(name, encoder, attention, base_seed).model
                model_cfg = RNNClassifierConfig(encoder=encoder, attention=attention, vocab_size=len(vocab),
                                                embed_dim=emb.shape[1], hidden_dim=r.hidden_dim,
                                                n_classes=len(data.label_names))
                lam = c.diagnostic_adversary_lambda
                adversary, _ = trained_consistent_adversary(study.cache, data, model_cfg, base, key, lam,
                                                            _train_cfg(study), adversary_seed(study), study.device,
                                                            embeddings=emb, progress=study.progress)
                guides = {"trained": (base, key), "adversary": (adversary, key | {"adversary_lambda": lam})}
                for guide_name, (guide, guide_key) in guides.items():
                    for seed in r.seeds:
                        model, _ = trained_guided_classifier(study.cache, data, student_cfg, guide, guide_key,
                                                             _train_cfg(study), seed, study.device,
                                                             embeddings=emb, progress=study.progress)
                        rows.append({"dataset": name, "guide": guide_name, "guide_model": f"{encoder}-{attention}",
                                     "seed": seed} | _test_metrics(model, study, name))
    return pd.DataFrame(rows)


def diagnostic_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``tables/diagnostic_mlp.csv``: test F1 (mean, sd, n over student seeds) per dataset and guide."""
    g = runs.groupby(["dataset", "guide", "guide_model"], sort=False)
    out = g["test_f1"].agg(["mean", "std", "count"]).rename(
        columns={"mean": "test_f1_mean", "std": "test_f1_std", "count": "n_seeds"})
    out["test_accuracy_mean"] = g["test_accuracy"].mean()
    return out.reset_index()
