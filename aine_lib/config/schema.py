"""Study configuration: frozen dataclasses loaded from YAML and validated.

A config file (``configs/smoke.yaml``, ``configs/paper.yaml``) describes one
run of the whole study. Every key is checked: an unknown key or a bad value
raises :class:`ConfigError` naming the key, the value and what is allowed, so
a typo never silently falls back to a default.

This module holds the sections (``data``, ``rnn``, ``counter``, ``transformer``, ``seq2seq``,
``internals``), each checking its ranges in ``__post_init__``; ``scaling`` is in
:mod:`aine_lib.config.scaling`, the whole :class:`~aine_lib.config.study.StudyConfig` in
:mod:`aine_lib.config.study`, and :mod:`aine_lib.config.loading` checks keys and types first.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aine_lib.config.errors import ConfigError, did_you_mean
from aine_lib.method_names import GENERIC_METHODS, TRANSFORMER_METHODS

Precision = Literal["float32", "bfloat16"]     # training precision (aine_lib.models.precision)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


def check_precision(value: str, where: str = "precision") -> None:
    if value not in PRECISIONS:
        raise ConfigError(f"{where} must be one of {list(PRECISIONS)}, got {value!r}"
                          f"{did_you_mean(str(value), PRECISIONS)}")


DatasetName = Literal["sst", "newsgroups", "uci_sentiment", "planted"]
DATASET_NAMES: tuple[str, ...] = typing.get_args(DatasetName)


@dataclass(frozen=True)
class PlantedConfig:
    """The synthetic task whose deciding tokens are known by construction."""

    n_train: int = 4000
    n_dev: int = 500
    n_test: int = 1000
    min_length: int = 8
    max_length: int = 30
    max_signal_tokens: int = 2
    distractor_prob: float = 0.3
    seed: int = 1234

    def __post_init__(self) -> None:
        for name in ("n_train", "n_dev", "n_test", "min_length", "max_signal_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.planted.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < self.min_length:
            raise ConfigError(
                f"data.planted.max_length ({self.max_length}) must be >= min_length ({self.min_length})"
            )
        if self.max_length < 2 * self.max_signal_tokens + 1:
            raise ConfigError(
                f"data.planted.max_length must be >= 2 * max_signal_tokens + 1 "
                f"(= {2 * self.max_signal_tokens + 1}) to fit the planted tokens"
            )
        if not 0.0 <= self.distractor_prob <= 1.0:
            raise ConfigError(f"data.planted.distractor_prob must be in [0, 1], got {self.distractor_prob}")


@dataclass(frozen=True)
class DataConfig:
    """Which data sets to load and how to cut them."""

    root: str = "data/raw"
    datasets: tuple[DatasetName, ...] = DATASET_NAMES
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 20190226
    min_freq: int = 1
    max_length: int | None = None
    planted: PlantedConfig = field(default_factory=PlantedConfig)

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ConfigError(f"data.datasets must name at least one of {list(DATASET_NAMES)}")
        if len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"data.datasets lists a data set twice: {list(self.datasets)}")
        for frac in ("dev_fraction", "test_fraction"):
            value = getattr(self, frac)
            if not 0.0 < value < 0.5:
                raise ConfigError(f"data.{frac} must be in (0, 0.5), got {value}")
        for name in ("max_train_examples", "max_eval_examples", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"data.{name} must be a positive integer or null, got {value}")
        if self.min_freq < 1:
            raise ConfigError(f"data.min_freq must be >= 1, got {self.min_freq}")


EncoderName = Literal["lstm", "cnn", "average"]
AttentionName = Literal["additive", "dot"]


@dataclass(frozen=True)
class RNNStudyConfig:
    """The Jain & Wallace family of experiments on RNN/CNN/Average classifiers."""

    encoders: tuple[EncoderName, ...] = ("lstm", "cnn", "average")
    attentions: tuple[AttentionName, ...] = ("additive", "dot")
    seeds: tuple[int, ...] = (0, 1, 2)
    hidden_dim: int = 128
    epochs: int = 8
    patience: int | None = 2
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    max_length: int | None = 500
    max_analysis_examples: int | None = None
    top_k: int = 5
    n_permutations: int = 100
    adversary_epsilon: float = 0.01
    adversary_candidates: int = 4
    adversary_steps: int = 200

    def __post_init__(self) -> None:
        for name in ("encoders", "attentions", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"rnn.{name} must be a non-empty list without repeats, got {list(values)}")
        for name in ("hidden_dim", "epochs", "batch_size", "top_k", "n_permutations",
                     "adversary_candidates", "adversary_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"rnn.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"rnn.lr must be in (0, 1), got {self.lr}")
        if self.weight_decay < 0:   # the training config would refuse it only when a model trains
            raise ConfigError(f"rnn.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 < self.adversary_epsilon < 1:
            raise ConfigError(f"rnn.adversary_epsilon must be in (0, 1), got {self.adversary_epsilon}")
        for name in ("max_length", "max_analysis_examples", "patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"rnn.{name} must be a positive integer or null, got {value}")


@dataclass(frozen=True)
class CounterStudyConfig:
    """Wiegreffe & Pinter 2019 and Serrano & Smith 2019 on the models of :class:`RNNStudyConfig`.

    Training settings (hidden size, epochs, optimiser) are the ``rnn`` section's.
    """

    encoders: tuple[EncoderName, ...] = ("lstm",)        # base models of the W&P experiments
    attentions: tuple[AttentionName, ...] = ("additive",)
    variance_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)    # the first is the base model the others are compared with
    adversary_lambdas: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
    diagnostic_adversary_lambda: float = 1.0             # which adversary guides the diagnostic MLP
    erasure_encoders: tuple[EncoderName, ...] = ("lstm", "cnn", "average")

    def __post_init__(self) -> None:
        for name in ("encoders", "attentions", "variance_seeds", "adversary_lambdas", "erasure_encoders"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"counter.{name} must be a non-empty list without repeats, got {list(values)}")
        if len(self.variance_seeds) < 2:
            raise ConfigError(f"counter.variance_seeds needs >= 2 seeds (a base and one to compare), "
                              f"got {list(self.variance_seeds)}")
        if any(lam < 0 for lam in self.adversary_lambdas):
            raise ConfigError(f"counter.adversary_lambdas must be >= 0, got {list(self.adversary_lambdas)}")
        if self.diagnostic_adversary_lambda not in self.adversary_lambdas:
            raise ConfigError(f"counter.diagnostic_adversary_lambda ({self.diagnostic_adversary_lambda}) must be "
                              f"one of counter.adversary_lambdas {list(self.adversary_lambdas)}")


@dataclass(frozen=True)
class ScratchTransformerConfig:
    """The small from-scratch Transformer encoder (trained on the planted task)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int = 128
    dropout: float = 0.1
    epochs: int = 10
    lr: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "heads", "intermediate", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"transformer.scratch.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ConfigError(f"transformer.scratch.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0 <= self.dropout < 1 or not 0 < self.lr < 1:
            raise ConfigError(f"transformer.scratch needs dropout in [0, 1) and lr in (0, 1), got "
                              f"{self.dropout}, {self.lr}")


FaithfulnessMode = Literal["remove", "mask", "attention_mask"]


@dataclass(frozen=True)
class TransformerStudyConfig:
    """Transformer encoders (notebooks 08-10): fine-tuned MiniLM and a small from-scratch model."""

    minilm_datasets: tuple[DatasetName, ...] = ("sst", "newsgroups")
    scratch_datasets: tuple[DatasetName, ...] = ("planted",)
    seeds: tuple[int, ...] = (0,)
    max_length: int = 256                 # wordpieces (or words) including [CLS] and [SEP]
    batch_size: int = 32
    minilm_epochs: int = 3
    minilm_lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    patience: int | None = 1
    # "bfloat16": mixed-precision training steps for MiniLM and the scratch encoder (2-2.5x faster on a CPU
    # with AMX/AVX512-BF16 or a GPU; slower on a CPU without); evaluation and attribution stay float32
    train_precision: Precision = "float32"
    scratch: ScratchTransformerConfig = field(default_factory=ScratchTransformerConfig)
    max_analysis_examples: int | None = 500
    # per-data-set caps that replace max_analysis_examples (say {newsgroups: 200}: LOO, occlusion and the
    # deletion curves cost about length^2 per example, and 20News posts are ~5x longer than SST sentences)
    analysis_examples: Mapping[str, int] = field(default_factory=dict)
    fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)
    deletion_modes: tuple[FaithfulnessMode, ...] = ("remove", "mask", "attention_mask")
    ig_steps: int = 32
    lime_samples: int = 200
    shap_samples: int = 200
    top_k: int = 5

    def __post_init__(self) -> None:
        check_precision(self.train_precision, "transformer.train_precision")
        for name in ("seeds", "fractions", "deletion_modes"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"transformer.{name} must be a non-empty list without repeats, got {list(values)}")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"transformer.fractions must be in (0, 1], got {list(self.fractions)}")
        if self.max_length < 3:
            raise ConfigError(f"transformer.max_length must be >= 3 ([CLS], a token, [SEP]), got {self.max_length}")
        # the training config would refuse these only when a model trains
        if not self.minilm_lr > 0:
            raise ConfigError(f"transformer.minilm_lr must be > 0, got {self.minilm_lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"transformer.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"transformer.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        for name in ("batch_size", "minilm_epochs", "ig_steps", "lime_samples", "shap_samples", "top_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"transformer.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_analysis_examples", "patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"transformer.{name} must be a positive integer or null, got {value}")
        for name, cap in self.analysis_examples.items():
            if name not in DATASET_NAMES:
                raise ConfigError(f"transformer.analysis_examples: unknown data set {name!r}; "
                                  f"use one of {list(DATASET_NAMES)}"
                                  f"{did_you_mean(name, DATASET_NAMES, 'transformer.analysis_examples')}")
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ConfigError(f"transformer.analysis_examples.{name} must be a positive integer, got {cap!r}")


Seq2SeqVariant = Literal["softmax", "entmax15", "supervised"]
SEQ2SEQ_VARIANTS: tuple[str, ...] = typing.get_args(Seq2SeqVariant)

TransductionTask = Literal["copy", "reverse", "mapping", "date", "bible"]


@dataclass(frozen=True)
class BibleConfig:
    """The Bible English -> Spanish translation task of notebooks 11-13 (``seq2seq.tasks`` entry ``bible``):
    its data, subwords and a larger model than the synthetic tasks need."""

    n_train: int | None = None          # null: every training verse that fits max_subwords
    n_dev: int = 500
    n_test: int = 500
    max_subwords: int = 48
    vocab_size: int = 6000
    split_seed: int = 20170612
    d_model: int = 128
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    d_ff: int = 512
    epochs: int = 15
    batch_size: int = 64
    warmup_steps: int = 1500
    seeds: tuple[int, ...] = (0,)
    beam_size: int = 4
    max_analysis_examples: int = 100    # test verses explained in 12-13 (attribution costs ~0.1 s per token on CPU)
    # the cross-attention variants trained on the Bible (the synthetic tasks train all three); softmax is the
    # model every analysis reads, the other two only enter the variants table of notebook 13
    variants: tuple[Seq2SeqVariant, ...] = ("softmax", "entmax15", "supervised")

    def __post_init__(self) -> None:
        for name in ("n_dev", "n_test", "max_subwords", "max_analysis_examples", "d_model", "heads", "encoder_layers", "decoder_layers",
                     "d_ff", "epochs", "batch_size", "warmup_steps", "beam_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"seq2seq.bible.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_train is not None and self.n_train < 1:
            raise ConfigError(f"seq2seq.bible.n_train must be a positive integer or null, got {self.n_train}")
        if self.vocab_size < 100:
            raise ConfigError(f"seq2seq.bible.vocab_size must be >= 100 (BPE needs room for the characters), "
                              f"got {self.vocab_size}")
        if self.d_model % self.heads:
            raise ConfigError(f"seq2seq.bible.d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seq2seq.bible.seeds must be a non-empty list without repeats, got {list(self.seeds)}")
        if "softmax" not in self.variants or len(set(self.variants)) != len(self.variants):
            raise ConfigError(f"seq2seq.bible.variants must list softmax (every analysis reads it) once, with "
                              f"any of {list(SEQ2SEQ_VARIANTS)}, got {list(self.variants)}")


@dataclass(frozen=True)
class Seq2SeqStudyConfig:
    """The encoder-decoder Transformer (notebooks 11-13) on synthetic tasks with known alignments and, with
    ``bible`` in ``tasks``, on Bible English -> Spanish (sizes in ``bible``; the fields here are the synthetic
    tasks' model and training settings)."""

    tasks: tuple[TransductionTask, ...] = ("copy", "reverse", "mapping", "date")
    n_train: int = 4000
    n_dev: int = 400
    n_test: int = 400
    min_len: int = 3
    max_len: int = 12
    data_seed: int = 4321
    d_model: int = 64
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.1
    epochs: int = 20
    batch_size: int = 64
    warmup_steps: int = 400
    lr_scale: float = 1.0
    label_smoothing: float = 0.1
    patience: int | None = 3
    # "bfloat16": mixed-precision training steps for every seq2seq model, Bible included (~1.6x faster on a
    # CPU with AMX/AVX512-BF16); decoding and attribution stay float32
    train_precision: Precision = "float32"
    seeds: tuple[int, ...] = (0,)
    max_analysis_examples: int | None = 200
    ig_steps: int = 16
    bible: BibleConfig = field(default_factory=BibleConfig)

    def __post_init__(self) -> None:
        check_precision(self.train_precision, "seq2seq.train_precision")
        for name in ("tasks", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"seq2seq.{name} must be a non-empty list without repeats, got {list(values)}")
        for name in ("n_train", "n_dev", "n_test", "min_len", "d_model", "heads", "encoder_layers",
                     "decoder_layers", "d_ff", "epochs", "batch_size", "warmup_steps", "ig_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"seq2seq.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_len < self.min_len:
            raise ConfigError(f"seq2seq.max_len ({self.max_len}) must be >= min_len ({self.min_len})")
        if self.d_model % self.heads:
            raise ConfigError(f"seq2seq.d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"seq2seq.dropout and seq2seq.label_smoothing must be in [0, 1), "
                              f"got {self.dropout} and {self.label_smoothing}")
        if not self.lr_scale > 0:   # the training config would refuse it only when a model trains
            raise ConfigError(f"seq2seq.lr_scale must be > 0, got {self.lr_scale}")
        for name in ("max_analysis_examples", "patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"seq2seq.{name} must be a positive integer or null, got {value}")


@dataclass(frozen=True)
class InternalsConfig:
    """Inside the Transformers (notebooks 16-17): head ablation and pruning, layer readout, activation
    maximisation, the TF-IDF glass box, explanation ensembles and seed stability."""

    probe_train_examples: int | None = 2000     # training rows for the per-layer probes
    ablation_dev_examples: int | None = 500     # dev rows that set the pruning order
    pruning_steps: int = 8
    neurons: int = 4                            # units shown by activation maximisation
    ngram: int = 3
    am_length: int = 6                          # free positions of the optimised input
    am_steps: int = 200
    ensemble_members: tuple[str, ...] = ("gradient_x_input", "integrated_gradients", "deeplift", "occlusion",
                                         "loo", "lime", "kernel_shap")
    stability_datasets: tuple[DatasetName, ...] = ("sst", "planted")
    stability_seeds: tuple[int, ...] = (0, 1, 2)
    stability_methods: tuple[str, ...] = ("attention_cls_last", "attention_cls_mean", "rollout", "norm", "chefer",
                                          "gradient_x_input", "integrated_gradients", "loo")

    def __post_init__(self) -> None:
        for name in ("pruning_steps", "neurons", "ngram", "am_length", "am_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"internals.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("probe_train_examples", "ablation_dev_examples"):
            value = getattr(self, name)
            if value is not None and value < 10:
                raise ConfigError(f"internals.{name} must be >= 10 or null (all rows), got {value}")
        if len(self.ensemble_members) < 2:
            raise ConfigError(f"internals.ensemble_members needs at least 2 methods, got {list(self.ensemble_members)}")
        if len(set(self.stability_seeds)) < 2:
            raise ConfigError(f"internals.stability_seeds needs at least 2 different seeds, "
                              f"got {list(self.stability_seeds)}")
        known = set(GENERIC_METHODS) | set(TRANSFORMER_METHODS)
        for name in ("ensemble_members", "stability_methods"):
            unknown = [m for m in getattr(self, name) if m not in known]
            if unknown:
                raise ConfigError(f"internals.{name}: unknown method(s) {unknown}; choose from {sorted(known)}"
                                  f"{did_you_mean(unknown[0], known)}")
