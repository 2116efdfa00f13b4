"""Study configuration: frozen dataclasses loaded from YAML and validated.

A config file (``configs/smoke.yaml``, ``configs/paper.yaml``) describes one
run of the whole study. Every key is checked: an unknown key or a bad value
raises :class:`ConfigError` naming the key, the value and what is allowed, so
a typo never silently falls back to a default.

Relative paths in a config are resolved against ``project_root``, which is
itself relative to the directory holding the config file (default ``..``, so
``configs/x.yaml`` resolves against the repository root). The data cache
directory can be overridden with the ``AINE_DATA_DIR`` environment variable.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

DATA_DIR_ENV = "AINE_DATA_DIR"

DatasetName = Literal["sst", "newsgroups", "uci_sentiment", "planted"]
DATASET_NAMES: tuple[str, ...] = typing.get_args(DatasetName)
DeviceName = Literal["auto", "cpu", "cuda"]


class ConfigError(ValueError):
    """A config file or override has an unknown key or a bad value."""


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
        for name in ("seeds", "fractions", "deletion_modes"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"transformer.{name} must be a non-empty list without repeats, got {list(values)}")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"transformer.fractions must be in (0, 1], got {list(self.fractions)}")
        if self.max_length < 3:
            raise ConfigError(f"transformer.max_length must be >= 3 ([CLS], a token, [SEP]), got {self.max_length}")
        for name in ("batch_size", "minilm_epochs", "ig_steps", "lime_samples", "shap_samples", "top_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"transformer.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_analysis_examples", "patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"transformer.{name} must be a positive integer or null, got {value}")
        for name, cap in self.analysis_examples.items():
            if name not in typing.get_args(DatasetName):
                raise ConfigError(f"transformer.analysis_examples: unknown data set {name!r}; "
                                  f"use one of {list(typing.get_args(DatasetName))}")
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ConfigError(f"transformer.analysis_examples.{name} must be a positive integer, got {cap!r}")


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
    seeds: tuple[int, ...] = (0,)
    max_analysis_examples: int | None = 200
    ig_steps: int = 16
    bible: BibleConfig = field(default_factory=BibleConfig)

    def __post_init__(self) -> None:
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
            raise ConfigError("seq2seq.dropout and seq2seq.label_smoothing must be in [0, 1)")
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
    stability_datasets: tuple[str, ...] = ("sst", "planted")
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
        from aine_lib.method_names import GENERIC_METHODS, TRANSFORMER_METHODS

        known = set(GENERIC_METHODS) | set(TRANSFORMER_METHODS)
        for name in ("ensemble_members", "stability_methods"):
            unknown = [m for m in getattr(self, name) if m not in known]
            if unknown:
                raise ConfigError(f"internals.{name}: unknown method(s) {unknown}; choose from {sorted(known)}")


ScalingFamily = Literal["average", "cnn", "lstm", "scratch", "minilm"]
ExecutorName = Literal["local", "ray"]


@dataclass(frozen=True)
class ScalingConfig:
    """Which models are more interpretable, and how much data interpretability needs (notebook 14).

    Training-data curves: every family trained on each fraction of the training split (a stratified subset
    drawn with each training seed, so the seeds differ in the examples seen too) with several seeds; model-size curves: the from-scratch Transformer over a
    grid of depth x width on all the training data. Every point is scored on the same (capped, seeded) test
    rows of its data set.
    """

    datasets: tuple[DatasetName, ...] = ("sst", "planted")
    families: tuple[ScalingFamily, ...] = ("average", "cnn", "lstm", "scratch", "minilm")
    rnn_attention: Literal["additive", "dot"] = "additive"
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    # per-family seeds that replace ``seeds`` (say {minilm: [0, 1]} where a family's training dominates the cost)
    family_seeds: Mapping[ScalingFamily, tuple[int, ...]] = field(default_factory=dict)
    max_analysis_examples: int | None = 200
    attention_methods: tuple[str, ...] = ("attention", "attention_cls_last", "attention_cls_mean")
    other_methods: tuple[str, ...] = ("gradient_x_input", "integrated_gradients", "loo")
    model_datasets: tuple[DatasetName, ...] = ("planted", "sst")
    model_layers: tuple[int, ...] = (1, 2, 4)
    model_hidden: tuple[int, ...] = (32, 64, 128)
    model_seeds: tuple[int, ...] = (0, 1, 2)
    length_bins: int = 4

    def __post_init__(self) -> None:
        lists = {name: getattr(self, name) for name in ("datasets", "families", "fractions", "seeds",
                                                          "attention_methods", "other_methods", "model_layers",
                                                          "model_hidden", "model_seeds")}
        lists |= {f"family_seeds.{family}": seeds for family, seeds in self.family_seeds.items()}
        for name, values in lists.items():
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"scaling.{name} must be a non-empty list without repeats, got {list(values)}")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"scaling.fractions must be in (0, 1], got {list(self.fractions)}")
        unknown = [family for family in self.family_seeds if family not in self.families]
        if unknown:
            raise ConfigError(f"scaling.family_seeds: {unknown[0]!r} is not in scaling.families "
                              f"{list(self.families)}; add it there or remove its entry")
        if any(v < 1 for v in self.model_layers):
            raise ConfigError(f"scaling.model_layers must be >= 1, got {list(self.model_layers)}")
        if any(v < 1 for v in self.model_hidden):
            raise ConfigError(f"scaling.model_hidden must be >= 1, got {list(self.model_hidden)}")
        if self.max_analysis_examples is not None and self.max_analysis_examples < 10:
            raise ConfigError(f"scaling.max_analysis_examples must be >= 10 or null, got {self.max_analysis_examples}")
        if self.length_bins < 1:
            raise ConfigError(f"scaling.length_bins must be >= 1, got {self.length_bins}")
        if "loo" not in self.other_methods:
            raise ConfigError("scaling.other_methods must include 'loo': it is the reference of the tau columns")
        from aine_lib.method_names import GENERIC_METHODS, RNN_METHODS, TRANSFORMER_METHODS

        attention = {"attention", "attention_cls_last", "attention_cls_mean", "rollout", "norm", "flow"}
        bad = [m for m in self.attention_methods if m not in attention]
        if bad:
            raise ConfigError(f"scaling.attention_methods: {bad} are not attention methods; choose from "
                              f"{sorted(attention)}")
        known = set(GENERIC_METHODS) | set(RNN_METHODS) | set(TRANSFORMER_METHODS)
        bad = [m for m in self.other_methods if m not in known or m in attention]
        if bad:
            raise ConfigError(f"scaling.other_methods: {bad} are unknown or attention methods; choose from "
                              f"{sorted(known - attention)}")

    def seeds_of(self, family: str) -> tuple[int, ...]:
        """The training seeds of ``family`` on the data curves (``family_seeds``, else ``seeds``)."""
        return tuple(self.family_seeds.get(family, self.seeds))


@dataclass(frozen=True)
class NotebookConfig:
    """One notebook of the study and the parameters papermill injects into it."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.endswith(".ipynb"):
            raise ConfigError(
                f"notebooks[].name must be a bare notebook name such as '00_data' "
                f"(no folder, no .ipynb), got {self.name!r}"
            )
        reserved = {"config", "overrides"} & set(self.parameters)
        if reserved:
            raise ConfigError(
                f"notebooks[{self.name}].parameters may not set {sorted(reserved)}: "
                "the driver injects those itself"
            )


@dataclass(frozen=True)
class StudyConfig:
    """One run of the study: where outputs go, which notebooks, which data."""

    name: str
    seed: int = 0
    device: DeviceName = "auto"
    project_root: str = ".."
    output_dir: str = "."
    cache_dir: str = "build/cache"
    notebook_dir: str = "notebooks"
    executed_dir: str = "build/notebooks"
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    rnn: RNNStudyConfig = field(default_factory=RNNStudyConfig)
    counter: CounterStudyConfig = field(default_factory=CounterStudyConfig)
    transformer: TransformerStudyConfig = field(default_factory=TransformerStudyConfig)
    seq2seq: Seq2SeqStudyConfig = field(default_factory=Seq2SeqStudyConfig)
    internals: InternalsConfig = field(default_factory=InternalsConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    # How grids of independent runs (notebook 14) are spread: a local process pool or a Ray cluster.
    executor: ExecutorName = "local"
    workers: int | None = None            # None: one per CPU core (local), the cluster's CPUs (ray)
    ray_address: str | None = None        # None: start a local Ray instance for the run
    notebooks: tuple[NotebookConfig, ...] = ()
    # Set by the loader, not by the YAML file: the file this config came from.
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"name must be letters, digits, '-' or '_', got {self.name!r}")
        heads = self.transformer.scratch.heads
        if any(h % heads for h in self.scaling.model_hidden):
            raise ConfigError(f"scaling.model_hidden {list(self.scaling.model_hidden)} must be multiples of "
                              f"transformer.scratch.heads ({heads})")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1 or null (one per CPU core), got {self.workers}")
        names = [nb.name for nb in self.notebooks]
        if len(set(names)) != len(names):
            raise ConfigError(f"notebooks lists a notebook twice: {names}")

    # ----- resolved paths -------------------------------------------------
    @property
    def root_path(self) -> Path:
        base = Path(self.source).resolve().parent if self.source else Path.cwd()
        return (base / self.project_root).resolve()

    def path(self, value: str) -> Path:
        """Resolve a config path against the project root."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (self.root_path / p)

    @property
    def data_root(self) -> Path:
        env = os.environ.get(DATA_DIR_ENV)
        return Path(env).expanduser().resolve() if env else self.path(self.data.root)

    @property
    def figures_dir(self) -> Path:
        return self.path(self.output_dir) / "figures"

    @property
    def tables_dir(self) -> Path:
        return self.path(self.output_dir) / "tables"

    @property
    def cache_path(self) -> Path:
        return self.path(self.cache_dir)

    def notebook(self, name: str) -> NotebookConfig:
        for nb in self.notebooks:
            if nb.name == name:
                return nb
        raise ConfigError(
            f"notebook {name!r} is not in config {self.name!r}; "
            f"choose one of {[nb.name for nb in self.notebooks]}"
        )


# ----- generic, strict dataclass construction -------------------------------

def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of ({_describe(typing.get_args(tp)[0])})"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {[f.name for f in dataclasses.fields(tp) if f.init]}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: got {value!r}, expected {_describe(tp)}")
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if tp is type(None):
        if value is not None:
            raise bad
        return None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        (item_tp, *_rest) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict, collections.abc.Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise bad
        args = typing.get_args(tp)
        if len(args) == 2:   # Mapping[K, V]: every key and value checked like a field of its own
            key_tp, value_tp = args
            value = {_coerce(k, key_tp, f"{key} key {k!r}"): _coerce(v, value_tp, f"{key}.{k}")
                     for k, v in value.items()}
        return FrozenDict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise bad
        return build_dataclass(tp, value, prefix=key)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # pragma: no cover - programming error


def build_dataclass(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """Build ``cls`` from a mapping, rejecting unknown keys and ill-typed values."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source"}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(
            f"unknown key(s) {unknown}{where}; allowed keys are {sorted(fields)}"
        )
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required field
        missing = [n for n, f in fields.items()
                   if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        raise ConfigError(f"{prefix or cls.__name__}: missing required key(s) {missing}") from exc


def _deep_merge(base: dict, overrides: Mapping[str, Any]) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(key, str) and "." in key:  # dotted override: data.max_train_examples=100
            head, rest = key.split(".", 1)
            value = {rest: value}
            key = head
        if isinstance(value, Mapping):
            # a section the file leaves out is built from the override alone (its dotted keys still nest)
            out[key] = _deep_merge(dict(out[key]) if isinstance(out.get(key), Mapping) else {}, value)
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """Load and validate a study config; ``overrides`` (dotted keys allowed) win over the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; use configs/smoke.yaml or configs/paper.yaml")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
    if overrides:
        raw = _deep_merge(dict(raw), overrides)
    cfg = build_dataclass(StudyConfig, raw)
    return dataclasses.replace(cfg, source=str(path.resolve()))


class FrozenDict(dict):
    """The read-only mapping a config's ``Mapping`` fields hold. Unlike ``types.MappingProxyType`` it pickles,
    so a config can travel to process-pool and Ray workers (`aine run --executor local --workers 2`)."""

    def _read_only(self, *args, **kwargs):
        raise TypeError("config mappings are read-only; change them with an override or dataclasses.replace")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


def config_to_dict(cfg: Any) -> Any:
    """A plain, JSON-able view of a config (for manifests and cache keys)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                if f.name != "source"}
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    return cfg
