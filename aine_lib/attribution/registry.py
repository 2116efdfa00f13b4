"""One registry of explanation methods for every model family, and the adapter that fits a model.

>>> method = get_method("integrated_gradients", model, n_steps=64)   # any supported model or adapter
>>> scores = method.attribute(batch, target)

``VARIANTS`` are the study's named settings of a method (their names appear in the tables):
``attention_cls_last`` is ``attention`` in the last layer, mean over heads, and so on.
"""

from __future__ import annotations

from aine_lib.attribution.attention import AttentionWeights
from aine_lib.attribution.base import AttributionMethod
from aine_lib.attribution.gradients import (Chefer, DeepLiftMethod, GradAttention, GradientImportance,
                                            GradientXInput, IntegratedGradientsMethod)
from aine_lib.attribution.perturbation import (KernelShapMethod, LeaveOneOut, LimeMethod, Occlusion,
                                               RandomScores)
from aine_lib.attribution.propagation import AttentionFlow, NormBased, Rollout
from aine_lib.config.errors import did_you_mean
from aine_lib.method_names import GENERIC_METHODS, RNN_METHODS, SEQ2SEQ_METHODS, TRANSFORMER_METHODS
from aine_lib.models.hf import hf_adapter, is_hf_model
from aine_lib.models.native_adapters import native_adapter
from aine_lib.models.protocol import ModelAdapter

METHODS: dict[str, type[AttributionMethod]] = {
    cls.name: cls for cls in (AttentionWeights, GradientImportance, LeaveOneOut, GradientXInput,
                              IntegratedGradientsMethod, DeepLiftMethod, Occlusion, LimeMethod, KernelShapMethod,
                              RandomScores, Rollout, AttentionFlow, NormBased, GradAttention, Chefer)
}
#: name -> (method, fixed options)
VARIANTS: dict[str, tuple[str, dict]] = {
    "attention_cls_last": ("attention", {"layer": -1, "head": None}),
    "attention_cls_mean": ("attention", {"layer": "mean", "head": None}),
    "attention_layer_head": ("attention", {}),
    "cross_attention": ("attention", {}),
    "cross_attention_mean": ("attention", {"layer": "mean", "head": None}),
}
ALL_NAMES = tuple(sorted(set(METHODS) | set(VARIANTS)))
if set(ALL_NAMES) != set(RNN_METHODS + TRANSFORMER_METHODS + GENERIC_METHODS + SEQ2SEQ_METHODS):
    raise RuntimeError("aine_lib.method_names and the attribution registry disagree: add the new method's name "
                       f"to method_names.py (registry {ALL_NAMES})")


def as_adapter(model, tokenizer=None) -> ModelAdapter:
    """The adapter of ``model``: one of the study's models, a Hugging Face model, or an adapter already."""
    if isinstance(model, ModelAdapter):
        return model
    adapter = native_adapter(model)
    if adapter is not None:
        return adapter
    if is_hf_model(model):
        return hf_adapter(model, tokenizer)
    raise TypeError(f"aine cannot explain a {type(model).__name__}: pass one of the study's models, a Hugging Face "
                    "AutoModelForSequenceClassification / AutoModelForSeq2SeqLM, or a ModelAdapter subclass "
                    "(aine_lib.models.protocol) for your own model")


def unknown_method(name: str) -> ValueError:
    return ValueError(f"unknown attribution method {name!r}{did_you_mean(name, ALL_NAMES)} "
                      f"Choose one of {list(ALL_NAMES)}")


def get_method(name: str, model, **options) -> AttributionMethod:
    """An instance of method ``name`` (or a named variant) for ``model`` (a model or an adapter)."""
    if name in VARIANTS:
        base, fixed = VARIANTS[name]
        clash = set(fixed) & set(options)
        if clash:
            raise ValueError(f"{name!r} fixes {sorted(clash)}; use {base!r} to choose them")
        method = METHODS[base](as_adapter(model), **fixed, **options)
        method.name = name
        return method
    if name not in METHODS:
        raise unknown_method(name)
    return METHODS[name](as_adapter(model), **options)
