"""Which models are more interpretable, and how much data does interpretability need? (notebook 14)

Two grids of independent training runs, each point trained, evaluated and explained on its own and cached:

* **training-data curves** (:func:`data_points`): every model family -- the Jain & Wallace Average, CNN and
  BiLSTM encoders with attention, the from-scratch Transformer encoder and fine-tuned MiniLM -- trained on
  a fraction of the training split (a label-stratified subset drawn with the point's seed, so the seed
  spread covers *which* examples were seen too) and chosen on the full dev split;
* **model-size curves** (:func:`model_points`): the from-scratch Transformer over depth x width on all the
  training data.

Every point is scored on the same test rows of its data set (:func:`analysis_rows`): test accuracy, and for
each attention and non-attention method Kendall tau with leave-one-out (full length, length-standardised,
top-k) and ERASER AOPC comprehensiveness/sufficiency (token removal). A point is a pure function of the
config and the point (:func:`run_point`), so the grid runs on any executor (:mod:`aine_lib.executors`)
with one shared cache.

Statistics (:func:`scaling_table`, :func:`paired_tests`): CIs resample trained models (seeds) and test
examples (:func:`~aine_lib.metrics.bootstrap.hierarchical_bootstrap`); tau compares score magnitudes
(|gradient x input|, |IG| against |LOO|: evidence against the class counts too) and is also reported standardised over word-length strata shared by all points of a data set,
because tau between two rankings depends on the number of ranked items; attention is compared with the
best non-attention method *paired by example*, with an effect size (d_z) and Benjamini-Hochberg q-values
over every test in the table.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from aine_lib.config import StudyConfig

RNN_FAMILIES = ("average", "cnn", "lstm")
TRANSFORMER_FAMILIES = ("scratch", "minilm")
METRICS = ("tau_loo", "tau_loo_length_std", "tau_top_k_loo", "aopc_comprehensiveness", "aopc_sufficiency")
#: higher is better for every metric but sufficiency (the prediction kept by the top tokens alone)
LOWER_IS_BETTER = ("aopc_sufficiency",)


@dataclass(frozen=True)
class ScalingPoint:
    """One training run of a grid. ``layers``/``hidden`` are set for the model-size grid only."""

    family: str
    dataset: str
    fraction: float
    seed: int
    layers: int | None = None
    hidden: int | None = None

    @property
    def grid(self) -> str:
        return "model_size" if self.layers is not None else "data"

    @property
    def label(self) -> str:
        size = f" L{self.layers} d{self.hidden}" if self.layers is not None else ""
        return f"{self.dataset}/{self.family}{size} {self.fraction:g} seed {self.seed}"


def data_points(cfg: StudyConfig) -> list[ScalingPoint]:
    s = cfg.scaling
    return [ScalingPoint(family, dataset, fraction, seed)
            for dataset in s.datasets for family in s.families for fraction in s.fractions
            for seed in s.seeds_of(family)]


def model_points(cfg: StudyConfig) -> list[ScalingPoint]:
    s = cfg.scaling
    return [ScalingPoint("scratch", dataset, 1.0, seed, layers, hidden)
            for dataset in s.model_datasets for layers in s.model_layers for hidden in s.model_hidden
            for seed in s.model_seeds]


def check_datasets(cfg: StudyConfig) -> None:
    """The scaling data sets must be loaded by the config (``data.datasets``)."""
    s = cfg.scaling
    missing = sorted((set(s.datasets) | set(s.model_datasets)) - set(cfg.data.datasets))
    if missing:
        raise ValueError(f"scaling data sets {missing} are not in data.datasets {list(cfg.data.datasets)}; "
                         f"add them there or remove them from scaling.datasets / scaling.model_datasets")


# ----- data --------------------------------------------------------------------------------------

def training_subset(labels, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices of a label-stratified ``fraction`` of the training rows (all rows for 1.0)."""
    from aine_lib.data.text import stratified_split

    labels = np.asarray(labels)
    if fraction >= 1.0:
        return np.arange(len(labels))
    rows = np.asarray(stratified_split(labels, [fraction], seed)[0])
    if len(np.unique(labels[rows])) < len(np.unique(labels)):
        raise ValueError(f"a {fraction:g} fraction of {len(labels)} training rows leaves a class out; "
                         "raise scaling.fractions or the data size")
    return rows


def analysis_rows(n_test: int, cap: int | None, seed: int) -> np.ndarray:
    """The test rows every point of a data set is explained on (seeded, sorted)."""
    if cap is None or n_test <= cap:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, size=cap, replace=False))


def _subset_data(data, rows: np.ndarray):
    from aine_lib.data import TextClassificationData

    splits = dict(data.splits) | {"train": data.train.iloc[rows].reset_index(drop=True)}
    return TextClassificationData(data.name, data.label_names, splits, data.description, data.source,
                                  dict(data.notes))


# ----- one point ---------------------------------------------------------------------------------

def _point_key(cfg: StudyConfig, point: ScalingPoint) -> dict:
    from aine_lib.models.rnn_attention import MODEL_CODE_VERSION

    s = cfg.scaling
    model = cfg.rnn if point.family in RNN_FAMILIES else cfg.transformer
    return {"point": asdict(point), "data": cfg.data, "model_config": model, "seed": cfg.seed,
            "rnn_attention": s.rnn_attention if point.family in RNN_FAMILIES else None,
            "methods": [s.attention_methods, s.other_methods], "cap": s.max_analysis_examples,
            "ig_steps": cfg.transformer.ig_steps, "top_k": cfg.transformer.top_k,
            "fractions": cfg.transformer.fractions, "lime_shap": [cfg.transformer.lime_samples,
                                                                  cfg.transformer.shap_samples],
            "code_version": MODEL_CODE_VERSION}


def run_point(cfg: StudyConfig, point: ScalingPoint) -> dict:
    """Train (or load), evaluate and explain one point; cached by the config parts that determine it.

    Returns ``{"point", "train_examples", "seconds", "accuracy": DataFrame[example, correct],
    "methods": DataFrame[example, length_words, method, tau_loo, tau_top_k_loo, aopc_comprehensiveness,
    aopc_sufficiency]}``.
    """
    from aine_lib.io import ResultCache

    cache = ResultCache(cfg.cache_path)
    return cache.get_or_compute("scaling_points", _point_key(cfg, point), lambda: _compute_point(cfg, point))


def _compute_point(cfg: StudyConfig, point: ScalingPoint) -> dict:
    from aine_lib.data import load_dataset
    from aine_lib.io import ResultCache
    from aine_lib.repro import get_device

    started = time.perf_counter()
    device = get_device(cfg.device)
    cache = ResultCache(cfg.cache_path)
    data = load_dataset(point.dataset, cfg)
    train_rows = training_subset(data.train["label"], point.fraction, point.seed)
    sub = _subset_data(data, train_rows)
    rows = analysis_rows(len(data.test), cfg.scaling.max_analysis_examples, cfg.seed)
    if point.family in RNN_FAMILIES:
        model, test_ids, mask_id, methods = _rnn_point(cfg, point, sub, cache, device)
    elif point.family in TRANSFORMER_FAMILIES:
        model, test_ids, mask_id, methods = _transformer_point(cfg, point, sub, cache, device)
    else:
        raise ValueError(f"unknown scaling family {point.family!r}; choose from {RNN_FAMILIES + TRANSFORMER_FAMILIES}")
    labels = data.test["label"].to_numpy()
    predicted = _predict(model, test_ids, device)
    accuracy = pd.DataFrame({"example": np.arange(len(labels)), "correct": (predicted == labels).astype(float)})
    lengths = data.test["tokens"].map(len).to_numpy()[rows]
    per = _explain(cfg, model, [test_ids[i] for i in rows], predicted[rows], mask_id, methods, device)
    per["length_words"] = lengths[per["example"].to_numpy()]
    per["example"] = rows[per["example"].to_numpy()]
    return {"point": point, "train_examples": int(len(train_rows)), "seconds": time.perf_counter() - started,
            "accuracy": accuracy, "methods": per}


def _rnn_point(cfg: StudyConfig, point: ScalingPoint, sub, cache, device):
    from aine_lib.data.pretrained import load_glove
    from aine_lib.models.rnn_attention import RNNClassifierConfig
    from aine_lib.models.training import TrainConfig, encode_split, trained_classifier

    r = cfg.rnn
    vocab = sub.build_vocabulary(min_freq=cfg.data.min_freq)
    emb = load_glove(cfg.data_root).embedding_matrix(vocab, seed=cfg.seed)
    model_cfg = RNNClassifierConfig(encoder=point.family, attention=cfg.scaling.rnn_attention, vocab_size=len(vocab),
                                    embed_dim=emb.shape[1], hidden_dim=r.hidden_dim, n_classes=len(sub.label_names))
    train_cfg = TrainConfig(epochs=r.epochs, batch_size=r.batch_size, lr=r.lr, weight_decay=r.weight_decay,
                            max_length=r.max_length, patience=r.patience)
    model, _ = trained_classifier(cache, sub, model_cfg, train_cfg, point.seed, device, embeddings=emb)
    methods = [m for m in cfg.scaling.attention_methods if m == "attention"] + list(cfg.scaling.other_methods)
    return model.eval(), encode_split(sub.test, vocab, r.max_length), None, methods


def _transformer_point(cfg: StudyConfig, point: ScalingPoint, sub, cache, device):
    from aine_lib.experiments.transformers import classifier_recipe
    from aine_lib.models.transformer_training import (encode_wordpieces, encode_words, ids_fingerprint,
                                                      trained_transformer)

    t = cfg.transformer
    vocab = None
    if point.family == "minilm":
        from aine_lib.data.pretrained import minilm_dir, minilm_tokenizer
        from aine_lib.models.transformer_encoder import _special_ids

        special, tokenizer = _special_ids(minilm_dir(cfg.data_root)), minilm_tokenizer(cfg.data_root)
        enc = {s: encode_wordpieces(getattr(sub, s), tokenizer, t.max_length, special["cls_id"], special["sep_id"])
               for s in ("train", "dev", "test")}
    else:
        vocab = sub.build_vocabulary(min_freq=cfg.data.min_freq)
        enc = {split: encode_words(getattr(sub, split), vocab, t.max_length) for split in ("train", "dev", "test")}
    build, train_cfg, key = classifier_recipe(cfg, point.family, len(sub.label_names), vocab, point.layers,
                                              point.hidden)
    key |= {"data": sub.name, "ids": ids_fingerprint([enc["train"], enc["dev"]])}
    model, _ = trained_transformer(cache, key, build, enc["train"], enc["dev"], train_cfg, point.seed, device)
    methods = [m for m in cfg.scaling.attention_methods if m != "attention"] + list(cfg.scaling.other_methods)
    return model.eval(), enc["test"].ids, model.cfg.mask_id, methods


@torch.no_grad()
def _predict(model, ids: list[list[int]], device, batch_size: int = 64) -> np.ndarray:
    from aine_lib.models.training import collate

    out = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        b = collate(chunk, [0] * len(chunk)).to(device)
        out.append(model(b.ids, b.mask).logits.argmax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def _explain(cfg: StudyConfig, model, ids: list[list[int]], targets: np.ndarray, mask_id, methods, device,
             batch_size: int = 16) -> pd.DataFrame:
    """Per analysis example and method: tau with LOO (full, top-k) and AOPC (token removal)."""
    from aine_lib.attribution import get_method
    from aine_lib.attribution.captum_methods import special_mask
    from aine_lib.metrics.faithfulness import aopc, faithfulness_curves
    from aine_lib.metrics.rank import kendall_tau, kendall_tau_top_k
    from aine_lib.models.training import collate

    t = cfg.transformer
    kwargs = {"integrated_gradients": {"n_steps": t.ig_steps}, "lime": {"n_samples": t.lime_samples},
              "kernel_shap": {"n_samples": t.shap_samples}}
    scores: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    curves = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        b = collate(chunk, [0] * len(chunk)).to(device)
        target = torch.as_tensor(targets[start:start + len(chunk)], device=device)
        special = special_mask(model, b.ids)
        for name in methods:
            s = get_method(name, model, **kwargs.get(name, {})).attribute(b, target).detach().float()
            s = torch.nan_to_num(s, nan=0.0)          # LOO of a one-token row is undefined: rank it last
            for i, n in enumerate(b.mask.sum(1).tolist()):
                scores[name].append(s[i, :n].cpu().numpy().astype(np.float64))
            df = faithfulness_curves(model, b, s, target, fractions=t.fractions, modes=("remove",),
                                     mask_id=mask_id, special=special)
            curves.append(df.assign(example=df["example"] + start, method=name))
    faith = aopc(pd.concat(curves, ignore_index=True))[["example", "method", "comprehensiveness", "sufficiency"]]
    faith = faith.rename(columns={"comprehensiveness": "aopc_comprehensiveness", "sufficiency": "aopc_sufficiency"})
    rows = []
    for i, seq in enumerate(ids):
        specials = set(cfg_special_ids(model))
        content = np.asarray([j for j, tok in enumerate(seq) if tok not in specials])
        # ranked by magnitude on both sides: a token that counts against the class matters too (signed
        # gradient x input / IG against unsigned LOO would rank it last)
        reference = np.abs(scores["loo"][i][content]) if len(content) else np.zeros(0)
        for name in methods:
            tau = top = np.nan
            if name != "loo" and len(content) >= 2:
                s = np.abs(scores[name][i][content])
                tau = kendall_tau(s, reference)[0]
                top = kendall_tau_top_k(s, reference, t.top_k)
            rows.append({"example": i, "method": name, "tau_loo": tau, "tau_top_k_loo": top})
    return pd.DataFrame(rows).merge(faith, on=["example", "method"], how="left")


def cfg_special_ids(model) -> tuple[int, ...]:
    return tuple(getattr(getattr(model, "cfg", None), "special_ids", ()))


def run_grid(cfg: StudyConfig, points: list[ScalingPoint], executor, progress: bool = False) -> list[dict]:
    """Every point of ``points`` through ``executor`` (results in point order; cached per point)."""
    from dataclasses import replace

    check_datasets(cfg)
    # the notebook list (read-only mappings of parameters) is not needed by a point and does not pickle
    portable = replace(cfg, notebooks=())
    return executor.map(run_point, [(portable, p) for p in points], desc="scaling grid", progress=progress)


# ----- statistics ---------------------------------------------------------------------------------

def length_strata(lengths: np.ndarray, bins: int) -> np.ndarray:
    """Stratum of each example: quantile bins of its word length (ties kept together)."""
    if bins <= 1 or len(np.unique(lengths)) < 2:
        return np.zeros(len(lengths), dtype=int)
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, lengths, side="left")


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
    from aine_lib.metrics.bootstrap import hierarchical_bootstrap

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
    from scipy.stats import false_discovery_control

    from aine_lib.metrics.bootstrap import hierarchical_bootstrap

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
