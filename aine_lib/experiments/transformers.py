"""Transformer encoders: does attention explain the decision, and which explanation method does better?

:class:`TransformerStudy` holds the data, encodings and trained models of one
config: all-MiniLM-L6-v2 fine-tuned on ``transformer.minilm_datasets`` and a
small from-scratch encoder on ``transformer.scratch_datasets`` (the planted
task, whose deciding tokens are known). Experiments are functions of the
study returning tidy DataFrames; every model and every attribution is cached.
Faithfulness is in :mod:`aine_lib.experiments.transformer_faithfulness`, agreement and plausibility in
:mod:`aine_lib.experiments.transformer_agreement`.
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

from aine_lib.attribution import GENERIC_METHODS, TRANSFORMER_METHODS, Explanation, attribute_batches, get_method
from aine_lib.cache import ResultCache
from aine_lib.config import StudyConfig
from aine_lib.data import TextClassificationData, load_dataset
from aine_lib.data.pretrained import minilm_dir, minilm_tokenizer
from aine_lib.metrics.bootstrap import bootstrap_ci
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION
from aine_lib.models.training import collate
from aine_lib.models.transformer_encoder import EncoderConfig, TransformerClassifier, _special_ids
from aine_lib.models.transformer_training import (EncodedSplit, TransformerTrainConfig, encode_wordpieces, encode_words,
                                                  evaluate_split, ids_fingerprint, scratch_vocabulary_ids,
                                                  trained_transformer)
from aine_lib.repro import get_device, progress_enabled

#: The methods compared in notebooks 08-10 (``attention_layer_head`` is swept separately).
METHODS = tuple(m for m in TRANSFORMER_METHODS if m != "attention_layer_head") + GENERIC_METHODS
ATTENTION_METHODS = ("attention_cls_last", "attention_cls_mean", "rollout", "flow", "norm", "grad_attention",
                     "chefer")


@dataclass(frozen=True)
class TrainedTransformer:
    dataset: str
    kind: str              # "minilm" or "scratch"
    seed: int
    model: torch.nn.Module
    history: pd.DataFrame
    best_epoch: int

    @property
    def label(self) -> str:
        return f"{self.kind}"


class TransformerStudy:
    """Data, encodings and trained Transformer classifiers for one config."""

    def __init__(self, cfg: StudyConfig, datasets: tuple[str, ...] | None = None):
        self.cfg = cfg
        t = cfg.transformer
        available = [(d, "minilm") for d in t.minilm_datasets] + [(d, "scratch") for d in t.scratch_datasets]
        available = [(d, k) for d, k in available if d in cfg.data.datasets]
        if datasets is not None:
            unknown = set(datasets) - {d for d, _ in available}
            if unknown:
                raise ValueError(f"data sets {sorted(unknown)} are not in transformer.minilm_datasets/"
                                 f"scratch_datasets (and data.datasets) of config {cfg.name!r}")
            available = [(d, k) for d, k in available if d in datasets]
        self.grid = available
        self.device = get_device(cfg.device)
        self.cache = ResultCache(cfg.cache_path)
        self.progress = progress_enabled(cfg)
        self._data: dict[str, TextClassificationData] = {}
        self._encoded: dict[tuple[str, str], dict[str, EncodedSplit]] = {}

    # ----- data ------------------------------------------------------------------
    def data(self, name: str) -> TextClassificationData:
        if name not in self._data:
            self._data[name] = load_dataset(name, self.cfg)
        return self._data[name]

    @cached_property
    def tokenizer(self):
        return minilm_tokenizer(self.cfg.data_root)

    @cached_property
    def minilm_special(self) -> dict[str, int]:
        return _special_ids(minilm_dir(self.cfg.data_root))

    def vocabulary(self, name: str):
        return self.data(name).build_vocabulary(min_freq=self.cfg.data.min_freq)

    def encoded(self, name: str, kind: str) -> dict[str, EncodedSplit]:
        """Train/dev/test encodings, and ``analysis``: the (capped, seeded) test rows the experiments use."""
        if (name, kind) not in self._encoded:
            data, t = self.data(name), self.cfg.transformer
            if kind == "minilm":
                sp = self.minilm_special
                enc = {s: encode_wordpieces(getattr(data, s), self.tokenizer, t.max_length, sp["cls_id"],
                                            sp["sep_id"]) for s in ("train", "dev", "test")}
            else:
                vocab = self.vocabulary(name)
                enc = {s: encode_words(getattr(data, s), vocab, t.max_length) for s in ("train", "dev", "test")}
            rows = self.analysis_rows(name)
            test = enc["test"]
            enc["analysis"] = EncodedSplit([test.ids[i] for i in rows], [test.labels[i] for i in rows],
                                           [test.word_index[i] for i in rows])
            self._encoded[(name, kind)] = enc
        return self._encoded[(name, kind)]

    def analysis_rows(self, name: str) -> list[int]:
        n = len(self.data(name).test)
        t = self.cfg.transformer
        cap = t.analysis_examples.get(name, t.max_analysis_examples)
        if cap is None or n <= cap:
            return list(range(n))
        rng = np.random.default_rng(self.cfg.seed)
        return sorted(rng.choice(n, size=cap, replace=False).tolist())

    def rationales(self, name: str, kind: str) -> list[np.ndarray] | None:
        """Per analysis example, the ground-truth rationale per *position* (0 at specials), or None."""
        data = self.data(name)
        if not data.has_rationales:
            return None
        test = data.test
        enc = self.encoded(name, kind)["analysis"]
        out = []
        for i, words in zip(self.analysis_rows(name), enc.word_index):
            r = np.asarray(test["rationale"].iloc[i])
            out.append(np.array([r[w] if w >= 0 else 0 for w in words], dtype=int))
        return out

    # ----- models --------------------------------------------------------------------
    def train(self, name: str, kind: str, seed: int) -> TrainedTransformer:
        data = self.data(name)
        enc = self.encoded(name, kind)
        vocab = self.vocabulary(name) if kind == "scratch" else None
        build, train_cfg, key = classifier_recipe(self.cfg, kind, len(data.label_names), vocab)
        key |= {"data": name, "ids": ids_fingerprint([enc["train"], enc["dev"]])}
        model, result = trained_transformer(self.cache, key, build, enc["train"], enc["dev"], train_cfg, seed,
                                            self.device, progress=self.progress)
        return TrainedTransformer(name, kind, seed, model, result.history, result.best_epoch)

    def models(self) -> Iterator[TrainedTransformer]:
        for name, kind in self.grid:
            for seed in self.cfg.transformer.seeds:
                yield self.train(name, kind, seed)

    def model_key(self, m: TrainedTransformer) -> dict:
        """Identifies a trained model (and the analysis rows) for the analysis caches."""
        t = self.cfg.transformer
        enc = self.encoded(m.dataset, m.kind)["analysis"]

        return {"model": [m.dataset, m.kind, m.seed], "transformer": t.scratch if m.kind == "scratch" else None,
                "max_length": t.max_length, "epochs": t.minilm_epochs if m.kind == "minilm" else t.scratch.epochs,
                "lr": t.minilm_lr if m.kind == "minilm" else t.scratch.lr, "patience": t.patience,
                "data": self.cfg.data, "rows": ids_fingerprint([enc]), "code_version": MODEL_CODE_VERSION}

    def method_kwargs(self, name: str) -> dict:
        t = self.cfg.transformer
        return {"integrated_gradients": {"n_steps": t.ig_steps}, "lime": {"n_samples": t.lime_samples},
                "kernel_shap": {"n_samples": t.shap_samples}}.get(name, {})


def classifier_recipe(cfg: StudyConfig, kind: str, n_classes: int, vocab=None, layers: int | None = None,
                      hidden: int | None = None):
    """``(build, train_cfg, key)`` for a Transformer classifier of ``cfg.transformer``: MiniLM fine-tuning
    (``kind="minilm"``) or the from-scratch encoder over ``vocab`` (``kind="scratch"``; ``layers``/``hidden``
    override the config's size, the feed-forward width scaling with ``hidden``). ``key`` identifies the
    initial weights and the model; the caller adds the data to it."""
    t = cfg.transformer
    if kind == "minilm":
        path = minilm_dir(cfg.data_root)
        weights = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()[:20]

        def build():
            return TransformerClassifier.from_pretrained(path, n_classes=n_classes)

        train_cfg = TransformerTrainConfig(epochs=t.minilm_epochs, batch_size=t.batch_size, lr=t.minilm_lr,
                                           weight_decay=t.weight_decay, warmup_fraction=t.warmup_fraction,
                                           patience=t.patience, precision=t.train_precision)
        return build, train_cfg, {"kind": kind, "checkpoint": weights, "n_classes": n_classes}
    if kind != "scratch":
        raise ValueError(f"unknown Transformer kind {kind!r}; choose 'minilm' or 'scratch'")
    if vocab is None:
        raise ValueError("the scratch encoder needs the training vocabulary (vocab=...)")
    s = t.scratch
    width = hidden or s.hidden
    model_cfg = EncoderConfig(hidden=width, layers=layers or s.layers, heads=s.heads,
                              intermediate=s.intermediate * width // s.hidden, max_positions=max(t.max_length, 8),
                              dropout=s.dropout, n_classes=n_classes, **scratch_vocabulary_ids(vocab))

    def build():
        return TransformerClassifier(model_cfg)

    train_cfg = TransformerTrainConfig(epochs=s.epochs, batch_size=t.batch_size, lr=s.lr, weight_decay=t.weight_decay,
                                       warmup_fraction=t.warmup_fraction, patience=t.patience,
                                       precision=t.train_precision)
    return build, train_cfg, {"kind": kind, "model": model_cfg}


# ----- performance ---------------------------------------------------------------------

def performance(study: TransformerStudy) -> pd.DataFrame:
    """Dev and test accuracy / macro-F1 of every model, with a 95 % bootstrap CI of test accuracy over test
    examples (one training seed per model in the paper config, so the CI holds the model fixed)."""
    rows = []
    for m in study.models():
        enc = study.encoded(m.dataset, m.kind)
        dev, test = evaluate_split(m.model, enc["dev"], study.device), evaluate_split(m.model, enc["test"],
                                                                                      study.device)
        low, high = bootstrap_ci(test["correct"].astype(float), seed=study.cfg.seed)
        rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "best_epoch": m.best_epoch,
                     "dev_accuracy": dev["accuracy"], "dev_f1": dev["f1"], "test_accuracy": test["accuracy"],
                     "test_accuracy_ci_low": low, "test_accuracy_ci_high": high,
                     "test_f1": test["f1"], "n_test": test["n"],
                     "train_seconds": float(m.history["seconds"].sum())})
    return pd.DataFrame(rows)


# ----- attributions ----------------------------------------------------------------------

def _batches(split: EncodedSplit, batch_size: int):
    for start in range(0, len(split), batch_size):
        yield start, collate(split.ids[start:start + batch_size], split.labels[start:start + batch_size])


def attributions(study: TransformerStudy, m: TrainedTransformer, methods: tuple[str, ...] = METHODS,
                 batch_size: int = 16) -> dict[str, Explanation]:
    """``{method: Explanation}`` on the analysis split (one score per position, the predicted class), cached."""
    split = study.encoded(m.dataset, m.kind)["analysis"]
    out = {}
    for name in tqdm(methods, desc=f"attributions {m.dataset}/{m.kind}", disable=not study.progress, leave=False):
        kwargs = study.method_kwargs(name)

        def compute(name=name, kwargs=kwargs) -> Explanation:
            method = get_method(name, m.model, **kwargs)
            return attribute_batches(method, (batch for _, batch in _batches(split, batch_size)))

        key = study.model_key(m) | {"method": name, "kwargs": kwargs, "result": "Explanation"}
        out[name] = study.cache.get_or_compute("transformer_attributions", key, compute)
    return out


def attribution_times(study: TransformerStudy, results: dict[tuple, dict[str, Explanation]]) -> pd.DataFrame:
    rows = []
    for (dataset, kind, seed), per_method in results.items():
        n = len(study.encoded(dataset, kind)["analysis"])
        for method, r in per_method.items():
            rows.append({"dataset": dataset, "model": kind, "seed": seed, "method": method,
                         "seconds_total": r.seconds, "seconds_per_example": r.seconds / n, "n": n})
    return pd.DataFrame(rows)


# ----- faithfulness -------------------------------------------------------------------------

def scores_fingerprint(result: Explanation) -> str:
    """SHA-256 of an attribution result's scores and targets (what a faithfulness run deletes)."""
    h = hashlib.sha256()
    for v in result.scores:
        h.update(np.asarray(v, dtype=np.float64).tobytes())
        h.update(b"|")
    h.update(np.asarray(result.target, dtype=np.int64).tobytes())
    return h.hexdigest()[:24]


# ----- agreement: layers and heads, methods, plausibility -----------------------------------------

def content_positions(split: EncodedSplit) -> list[np.ndarray]:
    """Per example of ``split``, the positions of real non-special tokens."""
    return [np.asarray([i for i, w in enumerate(words) if w >= 0]) for words in split.word_index]


def _content_positions(study: TransformerStudy, m: TrainedTransformer) -> list[np.ndarray]:
    """Per analysis example, the positions of real non-special tokens."""
    return content_positions(study.encoded(m.dataset, m.kind)["analysis"])


# ----- examples for the heat maps ------------------------------------------------------------------

def token_strings(study: TransformerStudy, m: TrainedTransformer, ids: list[int]) -> list[str]:
    if m.kind == "minilm":
        return [study.tokenizer.id_to_token(i) for i in ids]
    vocab = study.vocabulary(m.dataset)
    names = {m.model.cfg.cls_id: "[CLS]", m.model.cfg.sep_id: "[SEP]", m.model.cfg.mask_id: "[MASK]"}
    return [names.get(i) or vocab.itos[i] for i in ids]
