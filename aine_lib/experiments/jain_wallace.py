"""Jain & Wallace 2019, "Attention is not Explanation": every experiment as a pure function -> DataFrame.

:class:`RNNStudy` holds what all four notebooks share (data, vocabularies,
GloVe matrices, the trained-model cache) so each notebook only says what it
measures. Every trained model comes from the parameter-keyed cache: the first
notebook trains, the others load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from aine_lib.attribution import attribute_batches, get_method
from aine_lib.cache import ResultCache
from aine_lib.config import StudyConfig
from aine_lib.data import TextClassificationData, Vocabulary, load_dataset
from aine_lib.data.pretrained import load_glove
from aine_lib.interventions.attention import AdversarialAttention, permutation_output_change
from aine_lib.metrics.bootstrap import bootstrap_ci
from aine_lib.metrics.rank import kendall_tau, kendall_tau_top_k
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION, RNNClassifierConfig
from aine_lib.models.training import TrainConfig, collate, encode_split, evaluate, trained_classifier
from aine_lib.repro import get_device, make_generator, progress_enabled

COMPARISONS = (("attention", "gradient"), ("attention", "loo"), ("gradient", "loo"))


@dataclass(frozen=True)
class TrainedModel:
    dataset: str
    encoder: str
    attention: str
    seed: int
    model: torch.nn.Module
    history: pd.DataFrame
    best_epoch: int


class RNNStudy:
    """Data, vocabularies, embeddings and trained RNN/CNN/Average classifiers for one config."""

    def __init__(self, cfg: StudyConfig, datasets: tuple[str, ...] | None = None):
        self.cfg = cfg
        self.datasets = tuple(datasets or cfg.data.datasets)
        unknown = set(self.datasets) - set(cfg.data.datasets)
        if unknown:
            raise ValueError(f"data sets {sorted(unknown)} are not in the config's data.datasets "
                             f"{list(cfg.data.datasets)}")
        self.device = get_device(cfg.device)
        self.cache = ResultCache(cfg.cache_path)
        self.progress = progress_enabled(cfg)
        self._data: dict[str, tuple[TextClassificationData, Vocabulary, np.ndarray]] = {}
        self._analysis_rows: dict[str, tuple[pd.DataFrame, str]] = {}

    @cached_property
    def glove(self):
        return load_glove(self.cfg.data_root)

    def prepared(self, name: str) -> tuple[TextClassificationData, Vocabulary, np.ndarray]:
        """(data, train vocabulary, GloVe-initialised embedding matrix) for one data set."""
        if name not in self._data:
            data = load_dataset(name, self.cfg)
            vocab = data.build_vocabulary(min_freq=self.cfg.data.min_freq)
            emb = self.glove.embedding_matrix(vocab, seed=self.cfg.seed)
            self._data[name] = (data, vocab, emb)
        return self._data[name]

    def analysis_split(self, name: str) -> pd.DataFrame:
        """The test rows the attribution experiments use (a seeded, capped subset in smoke runs)."""
        return self._analysis(name)[0]

    def analysis_fingerprint(self, name: str) -> str:
        """Hash of the analysis rows: part of every cached analysis's key."""
        return self._analysis(name)[1]

    def _analysis(self, name: str) -> tuple[pd.DataFrame, str]:
        if name not in self._analysis_rows:
            data, _, _ = self.prepared(name)
            test = data.test
            cap = self.cfg.rnn.max_analysis_examples
            if cap is not None and len(test) > cap:
                test = test.sample(n=cap, random_state=self.cfg.seed).sort_index()
            test = test.reset_index(drop=True)
            self._analysis_rows[name] = (test, _fingerprint(test))
        return self._analysis_rows[name]

    def train(self, name: str, encoder: str, attention: str, seed: int,
              uniform_attention: bool = False) -> TrainedModel:
        data, vocab, emb = self.prepared(name)
        r = self.cfg.rnn
        model_cfg = RNNClassifierConfig(
            encoder=encoder, attention=attention, vocab_size=len(vocab), embed_dim=emb.shape[1],
            hidden_dim=r.hidden_dim, n_classes=len(data.label_names), uniform_attention=uniform_attention)
        train_cfg = TrainConfig(epochs=r.epochs, batch_size=r.batch_size, lr=r.lr,
                                weight_decay=r.weight_decay, max_length=r.max_length, patience=r.patience)
        model, result = trained_classifier(self.cache, data, model_cfg, train_cfg, seed, self.device,
                                           embeddings=emb, progress=self.progress)
        model.eval()
        return TrainedModel(name, encoder, attention, seed, model, result.history, result.best_epoch)

    def grid(self, seeds: tuple[int, ...] | None = None) -> Iterator[tuple[str, str, str, int]]:
        r = self.cfg.rnn
        for name in self.datasets:
            for encoder in r.encoders:
                for attention in r.attentions:
                    for seed in (seeds if seeds is not None else r.seeds):
                        yield name, encoder, attention, seed

    def models(self, seeds: tuple[int, ...] | None = None) -> Iterator[TrainedModel]:
        grid = list(self.grid(seeds))
        for name, encoder, attention, seed in tqdm(grid, desc="models", disable=not self.progress):
            yield self.train(name, encoder, attention, seed)


def _train_one(cfg: StudyConfig, name: str, encoder: str, attention: str, seed: int) -> None:
    """One model of :func:`train_grid`, in a worker (data and embeddings prepared once per worker)."""
    if _WORKER_STUDY.get("cfg") != cfg:         # a worker serves one map call, hence one config
        _WORKER_STUDY.update(cfg=cfg, study=RNNStudy(cfg))
    _WORKER_STUDY["study"].train(name, encoder, attention, seed)


_WORKER_STUDY: dict = {}


def train_grid(study: RNNStudy, executor, seeds: tuple[int, ...] | None = None) -> None:
    """Train (into the cache) every model of the grid through ``executor``; :meth:`RNNStudy.models` then
    loads them. Each model trains with one torch thread (``repro.TRAINING_THREADS``), so two workers on
    2 cores train two at a time (1.2-1.4x the throughput of one process with two threads)."""
    from dataclasses import replace

    portable = replace(study.cfg, notebooks=())
    tasks = [(portable, *point) for point in study.grid(seeds)]
    executor.map(_train_one, tasks, desc="models", progress=study.progress)


# ----- 01 performance ---------------------------------------------------------

def performance_runs(study: RNNStudy) -> pd.DataFrame:
    """One row per trained model: dev metrics of the chosen epoch and test metrics."""
    rows = []
    for m in study.models():
        data, vocab, _ = study.prepared(m.dataset)
        dev = evaluate(m.model, data.dev, vocab, study.device, max_length=study.cfg.rnn.max_length)
        test = evaluate(m.model, data.test, vocab, study.device, max_length=study.cfg.rnn.max_length)
        rows.append({"dataset": m.dataset, "encoder": m.encoder, "attention": m.attention, "seed": m.seed,
                     "best_epoch": m.best_epoch, "dev_accuracy": dev["accuracy"], "dev_f1": dev["f1"],
                     "test_accuracy": test["accuracy"], "test_f1": test["f1"], "n_test": test["n"]})
    return pd.DataFrame(rows)


def summarise_over_seeds(runs: pd.DataFrame, metrics: tuple[str, ...] = ("test_accuracy", "test_f1")) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds for each dataset x encoder x attention."""
    keys = ["dataset", "encoder", "attention"]
    agg = runs.groupby(keys, sort=False)[list(metrics)].agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    return agg.reset_index()


# ----- 02 attention vs gradients / leave-one-out ------------------------------------

def importance_scores(study: RNNStudy, m: TrainedModel) -> dict[str, list[np.ndarray]]:
    """Attention, gradient and LOO scores on the analysis split, explaining the predicted class."""
    _, vocab, _ = study.prepared(m.dataset)
    df = study.analysis_split(m.dataset)
    out = {}
    for name in ("attention", "gradient", "loo"):
        key = {"dataset": m.dataset, "encoder": m.encoder, "attention": m.attention, "seed": m.seed,
               "method": name, "rows": study.analysis_fingerprint(m.dataset), "config": _model_key(study)}
        out[name] = study.cache.get_or_compute(
            "rnn_attributions", key | {"result": "Explanation"},
            lambda name=name: attribute_batches(get_method(name, m.model), _row_batches(df, vocab, study)))
    return {k: v.scores for k, v in out.items()} | {"target": out["attention"].target}


def _row_batches(df: pd.DataFrame, vocab: Vocabulary, study: RNNStudy, batch_size: int = 64) -> Iterator:
    """The rows of ``df`` in order, as batches of the model's word ids (truncated to ``rnn.max_length``)."""
    ids = encode_split(df, vocab, study.cfg.rnn.max_length)
    labels = df["label"].tolist()
    for start in range(0, len(ids), batch_size):
        yield collate(ids[start:start + batch_size], labels[start:start + batch_size])


def _fingerprint(df: pd.DataFrame) -> str:
    blob = "\n".join(f"{l}\t{t}" for l, t in zip(df["label"], df["text"]))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _model_key(study: RNNStudy) -> dict:
    """Everything that determines a trained model (so cached analyses never outlive their model)."""
    r = study.cfg.rnn
    return {"hidden_dim": r.hidden_dim, "epochs": r.epochs, "patience": r.patience, "batch_size": r.batch_size, "lr": r.lr,
            "weight_decay": r.weight_decay, "max_length": r.max_length, "data": study.cfg.data,
            "config_seed": study.cfg.seed, "code_version": MODEL_CODE_VERSION}


def tau_per_instance(study: RNNStudy, seeds: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Kendall tau (full length and top-k) between every pair of importance measures, per instance."""
    k = study.cfg.rnn.top_k
    rows = []
    for m in study.models(seeds):
        scores = importance_scores(study, m)
        for i, target in enumerate(scores["target"]):
            length = len(scores["attention"][i])
            if length < 2:
                continue
            for a, b in COMPARISONS:
                sa, sb = scores[a][i], scores[b][i]
                if np.isnan(sa).any() or np.isnan(sb).any():
                    continue
                tau, p = kendall_tau(sa, sb)
                rows.append({"dataset": m.dataset, "encoder": m.encoder, "attention": m.attention,
                             "seed": m.seed, "example": i, "predicted": int(target), "length": length,
                             "comparison": f"{a}~{b}", "tau": tau, "p_value": p,
                             "tau_top_k": kendall_tau_top_k(sa, sb, k)})
    return pd.DataFrame(rows)


def tau_table(per_instance: pd.DataFrame, seed: int = 0, by_class: bool = False) -> pd.DataFrame:
    """``tables/jw_tau.csv``: mean/std of tau, share significant (p < 0.05), top-k tau with bootstrap CI.

    ``by_class=True`` splits every row by predicted class, as J&W's Table 2 does.
    """
    keys = ["dataset", "encoder", "attention", "comparison"] + (["predicted"] if by_class else [])
    rows = []
    for key, g in per_instance.groupby(keys, sort=False):
        tau = g["tau"].dropna().to_numpy()
        topk = g["tau_top_k"].dropna().to_numpy()
        lo, hi = bootstrap_ci(tau, seed=seed) if len(tau) else (np.nan, np.nan)
        row = dict(zip(keys, key))
        row.update({"tau_mean": tau.mean() if len(tau) else np.nan, "tau_std": tau.std(ddof=1) if len(tau) > 1 else np.nan,
                    "tau_ci_low": lo, "tau_ci_high": hi,
                    "frac_sig": float((g["p_value"] < 0.05).mean()),
                    "tau_top_k_mean": topk.mean() if len(topk) else np.nan,
                    "tau_top_k_std": topk.std(ddof=1) if len(topk) > 1 else np.nan,
                    "n": len(g)})
        rows.append(row)
    return pd.DataFrame(rows)


# ----- 03 permutation and 04 adversarial attention ---------------------------------------

def _encoded_batches(study: RNNStudy, m: TrainedModel, batch_size: int = 64):
    """(batch, hidden, attention) for the analysis split, hidden states and attention detached."""
    _, vocab, _ = study.prepared(m.dataset)
    for batch in _row_batches(study.analysis_split(m.dataset), vocab, study, batch_size):
        batch = batch.to(study.device)
        with torch.no_grad():
            hidden = m.model.encode(m.model.embed(batch.ids), batch.mask)
            attention = m.model.attend(hidden, batch.mask)
        yield batch, hidden, attention


def _generator(study: RNNStudy, m: TrainedModel, salt: str) -> torch.Generator:
    digest = hashlib.sha256(f"{salt}|{m.dataset}|{m.encoder}|{m.attention}|{m.seed}".encode()).hexdigest()
    return make_generator(int(digest[:8], 16), device=study.device)


def permutation_per_instance(study: RNNStudy, seeds: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Median output change (TVD) over random permutations of attention, and each instance's max attention."""
    n = study.cfg.rnn.n_permutations
    rows = []
    for m in study.models(seeds):
        def compute(m=m) -> pd.DataFrame:
            gen = _generator(study, m, "permutation")
            parts = []
            for batch, hidden, attention in _encoded_batches(study, m):
                change = permutation_output_change(m.model.decode, hidden, attention, batch.mask, n, gen)
                parts.append(pd.DataFrame({"length": batch.mask.sum(1).cpu().numpy(),
                                           "max_attention": attention.max(1).values.cpu().numpy(),
                                           "median_output_change": change.cpu().numpy()}))
            return pd.concat(parts, ignore_index=True)
        key = {"model": [m.dataset, m.encoder, m.attention, m.seed], "config": _model_key(study),
               "rows": study.analysis_fingerprint(m.dataset), "n_permutations": n}
        df = study.cache.get_or_compute("rnn_permutation", key, compute)
        rows.append(df.assign(dataset=m.dataset, encoder=m.encoder, attention=m.attention, seed=m.seed))
    return pd.concat(rows, ignore_index=True)


def adversarial_per_instance(study: RNNStudy, seeds: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Max JSD of a feasible adversarial attention (output within epsilon) per instance."""
    r = study.cfg.rnn
    rows = []
    for m in study.models(seeds):
        def compute(m=m) -> pd.DataFrame:
            gen = _generator(study, m, "adversary")
            adversary = AdversarialAttention(m.model.decode, n_candidates=r.adversary_candidates,
                                             epsilon=r.adversary_epsilon, steps=r.adversary_steps)
            parts = []
            for batch, hidden, attention in _encoded_batches(study, m, batch_size=256):
                res = adversary.search(hidden, attention, batch.mask, gen)
                parts.append(pd.DataFrame({"length": batch.mask.sum(1).cpu().numpy(),
                                           "max_attention": attention.max(1).values.cpu().numpy(),
                                           "max_jsd": res.jsd.cpu().numpy(), "output_tvd": res.tvd.cpu().numpy(),
                                           "found": res.found.cpu().numpy()}))
            return pd.concat(parts, ignore_index=True)
        key = {"model": [m.dataset, m.encoder, m.attention, m.seed], "config": _model_key(study),
               "rows": study.analysis_fingerprint(m.dataset), "epsilon": r.adversary_epsilon,
               "candidates": r.adversary_candidates, "steps": r.adversary_steps}
        df = study.cache.get_or_compute("rnn_adversary", key, compute)
        rows.append(df.assign(dataset=m.dataset, encoder=m.encoder, attention=m.attention, seed=m.seed))
    return pd.concat(rows, ignore_index=True)


def adversarial_table(per_instance: pd.DataFrame, seed: int = 0, threshold: float = 0.5) -> pd.DataFrame:
    """``tables/adversarial.csv``: mean max JSD (bootstrap CI), share with JSD > threshold, share feasible."""
    keys = ["dataset", "encoder", "attention"]
    rows = []
    for key, g in per_instance.groupby(keys, sort=False):
        jsd = g["max_jsd"].to_numpy()
        above = (jsd > threshold).astype(float)
        lo, hi = bootstrap_ci(jsd, seed=seed)
        flo, fhi = bootstrap_ci(above, seed=seed)
        rows.append(dict(zip(keys, key)) | {
            "max_jsd_mean": jsd.mean(), "max_jsd_ci_low": lo, "max_jsd_ci_high": hi,
            f"frac_jsd_gt_{threshold}": above.mean(), "frac_ci_low": flo, "frac_ci_high": fhi,
            "frac_feasible": g["found"].mean(), "n": len(g)})
    return pd.DataFrame(rows)


def max_attention_bins(values: pd.Series, edges: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> pd.Series:
    """Bin labels ("0.25-0.50", ...) for max attention, as in J&W's violin plots."""
    labels = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(edges[:-1], edges[1:])]
    return pd.cut(values, bins=list(edges), labels=labels, include_lowest=True).astype(str)


def tau_differences(per_instance: pd.DataFrame) -> pd.DataFrame:
    """Per instance tau(gradient, LOO) - tau(attention, LOO): > 0 means gradients agree better with LOO."""
    keys = ["dataset", "encoder", "attention", "seed", "example"]
    wide = per_instance.pivot_table(index=keys, columns="comparison", values="tau").reset_index()
    wide["difference"] = wide["gradient~loo"] - wide["attention~loo"]
    return wide[keys + ["difference"]].dropna()


def permutation_table(per_instance: pd.DataFrame) -> pd.DataFrame:
    """``tables/permutation.csv``: median/IQR of the median output change per model and max-attention bin."""
    df = per_instance.assign(max_attention_bin=max_attention_bins(per_instance["max_attention"]))
    keys = ["dataset", "encoder", "attention", "max_attention_bin"]
    g = df.groupby(keys, sort=True)["median_output_change"]
    out = g.median().rename("output_change_median").to_frame()
    out["output_change_q25"] = g.quantile(0.25)
    out["output_change_q75"] = g.quantile(0.75)
    out["n"] = g.size()
    return out.reset_index()
