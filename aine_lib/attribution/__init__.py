"""Explanation methods: one class each, one registry for every model family, one result type.

>>> from aine_lib.attribution import explain
>>> explanations = explain(model, tokenizer, texts, methods=["attention", "integrated_gradients"])

Lower level, for experiments that build their own batches:

>>> method = get_method("rollout", model)                 # model: ours, Hugging Face, or an adapter
>>> result = attribute_batches(method, batches)           # Explanation
"""

from aine_lib.attribution.base import AttributionMethod
from aine_lib.attribution.explain import attribute_batches, explain
from aine_lib.attribution.explanation import Explanation
from aine_lib.attribution.registry import ALL_NAMES, METHODS, VARIANTS, as_adapter, get_method
from aine_lib.method_names import GENERIC_METHODS, RNN_METHODS, SEQ2SEQ_METHODS, TRANSFORMER_METHODS
from aine_lib.models.protocol import AttentionUnavailableError, MethodNotApplicable

__all__ = ["ALL_NAMES", "GENERIC_METHODS", "METHODS", "RNN_METHODS", "SEQ2SEQ_METHODS", "TRANSFORMER_METHODS",
           "VARIANTS", "AttentionUnavailableError", "AttributionMethod", "Explanation", "MethodNotApplicable",
           "as_adapter", "attribute_batches", "explain", "get_method"]
