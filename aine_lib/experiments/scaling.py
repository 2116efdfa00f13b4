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
config and the point (:func:`run_point`), so the grid runs on any executor (:mod:`aine_lib.study.executors`)
with one shared cache.

Statistics (:func:`~aine_lib.experiments.scaling_statistics.scaling_table`,
:func:`~aine_lib.experiments.scaling_statistics.paired_tests`): CIs resample trained models (seeds) and test
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

from aine_lib.attribution import as_adapter, get_method
from aine_lib.cache import ResultCache
from aine_lib.config import StudyConfig
from aine_lib.data import TextClassificationData, load_dataset
from aine_lib.data.pretrained import load_glove, minilm_dir, minilm_tokenizer
from aine_lib.data.text import stratified_split
from aine_lib.evaluation.faithfulness import faithfulness_curves
from aine_lib.experiments.transformers import classifier_recipe
from aine_lib.metrics.faithfulness import aopc
from aine_lib.metrics.rank import kendall_tau, kendall_tau_top_k
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION, RNNClassifierConfig
from aine_lib.models.training import TrainConfig, collate, encode_split, trained_classifier
from aine_lib.models.transformer_encoder import _special_ids
from aine_lib.models.transformer_training import encode_wordpieces, encode_words, ids_fingerprint, trained_transformer
from aine_lib.repro import get_device

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
    splits = dict(data.splits) | {"train": data.train.iloc[rows].reset_index(drop=True)}
    return TextClassificationData(data.name, data.label_names, splits, data.description, data.source,
                                  dict(data.notes))


# ----- one point ---------------------------------------------------------------------------------

def _point_key(cfg: StudyConfig, point: ScalingPoint) -> dict:
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
    cache = ResultCache(cfg.cache_path)
    return cache.get_or_compute("scaling_points", _point_key(cfg, point), lambda: _compute_point(cfg, point))


def _compute_point(cfg: StudyConfig, point: ScalingPoint) -> dict:
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
    t = cfg.transformer
    vocab = None
    if point.family == "minilm":
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
    out = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        b = collate(chunk, [0] * len(chunk)).to(device)
        out.append(model(b.ids, b.mask).logits.argmax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def _explain(cfg: StudyConfig, model, ids: list[list[int]], targets: np.ndarray, mask_id, methods, device,
             batch_size: int = 16) -> pd.DataFrame:
    """Per analysis example and method: tau with LOO (full, top-k) and AOPC (token removal)."""
    t = cfg.transformer
    kwargs = {"integrated_gradients": {"n_steps": t.ig_steps}, "lime": {"n_samples": t.lime_samples},
              "kernel_shap": {"n_samples": t.shap_samples}}
    scores: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    curves = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        b = collate(chunk, [0] * len(chunk)).to(device)
        target = torch.as_tensor(targets[start:start + len(chunk)], device=device)
        special = as_adapter(model).special_mask(b.ids)
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
