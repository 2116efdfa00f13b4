"""The ``scaling`` section: which models are more interpretable, and how much data that needs (notebook 14)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aine_lib.config.errors import ConfigError, did_you_mean
from aine_lib.config.schema import DatasetName
from aine_lib.method_names import GENERIC_METHODS, RNN_METHODS, TRANSFORMER_METHODS

ScalingFamily = Literal["average", "cnn", "lstm", "scratch", "minilm"]


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
        attention = {"attention", "attention_cls_last", "attention_cls_mean", "rollout", "norm", "flow"}
        bad = [m for m in self.attention_methods if m not in attention]
        if bad:
            raise ConfigError(f"scaling.attention_methods: {bad} are not attention methods; choose from "
                              f"{sorted(attention)}{did_you_mean(bad[0], attention)}")
        known = set(GENERIC_METHODS) | set(RNN_METHODS) | set(TRANSFORMER_METHODS)
        bad = [m for m in self.other_methods if m not in known or m in attention]
        if bad:
            misspelt = [m for m in bad if m not in known]   # the nearest name is offered for these only
            hint = did_you_mean(misspelt[0], known - attention) if misspelt else ""
            raise ConfigError(f"scaling.other_methods: {bad} are unknown or attention methods; choose from "
                              f"{sorted(known - attention)}{hint}")

    def seeds_of(self, family: str) -> tuple[int, ...]:
        """The training seeds of ``family`` on the data curves (``family_seeds``, else ``seeds``)."""
        return tuple(self.family_seeds.get(family, self.seeds))
