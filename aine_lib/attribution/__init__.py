"""Explanation methods: one class each, one registry, one result type.

>>> method = get_method("gradient", model)
>>> result = attribute_dataset(method, model, df, vocab, device)   # AttributionResult
"""

from __future__ import annotations

import numpy as np
import torch

from aine_lib.attribution.attention import AttentionWeights
from aine_lib.attribution.base import AttributionMethod, AttributionResult
from aine_lib.attribution.captum_methods import (DeepLiftMethod, GradientXInput, IntegratedGradientsMethod,
                                                 KernelShapMethod, LimeMethod, Occlusion, RandomScores)
from aine_lib.attribution.gradient import GradientImportance
from aine_lib.attribution.occlusion import LeaveOneOut
from aine_lib.attribution.transformer_attention import (AttentionFlow, Chefer, GradAttention, NormBased,
                                                        RawAttentionCLSLast, RawAttentionCLSMean,
                                                        RawAttentionLayerHead, Rollout)
from aine_lib.method_names import GENERIC_METHODS, RNN_METHODS, TRANSFORMER_METHODS

METHODS: dict[str, type[AttributionMethod]] = {
    cls.name: cls for cls in (AttentionWeights, GradientImportance, LeaveOneOut, GradientXInput,
                              IntegratedGradientsMethod, DeepLiftMethod, Occlusion, LimeMethod, KernelShapMethod,
                              RandomScores, RawAttentionCLSLast, RawAttentionCLSMean, RawAttentionLayerHead,
                              Rollout, AttentionFlow, NormBased, GradAttention, Chefer)
}
if set(METHODS) != set(RNN_METHODS + TRANSFORMER_METHODS + GENERIC_METHODS):
    raise RuntimeError("aine_lib.method_names and the attribution registry disagree: add the new method's name "
                       f"to method_names.py (registry {sorted(METHODS)})")

__all__ = ["METHODS", "AttributionMethod", "AttributionResult", "attribute_dataset", "get_method"]


def get_method(name: str, model: torch.nn.Module, **kwargs) -> AttributionMethod:
    try:
        cls = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown attribution method {name!r}; choose one of {sorted(METHODS)}") from None
    return cls(model, **kwargs)


def attribute_dataset(method: AttributionMethod, model: torch.nn.Module, df, vocab, device: torch.device,
                      batch_size: int = 64, max_length: int | None = None,
                      target: str = "predicted") -> AttributionResult:
    """Scores of ``method`` for every row of ``df`` (in order), explaining the predicted class.

    ``target='label'`` explains the gold class instead.
    """
    from aine_lib.models.training import collate, encode_split

    if target not in ("predicted", "label"):
        raise ValueError(f"target must be 'predicted' or 'label', got {target!r}")
    model.eval()
    ids = encode_split(df, vocab, max_length)
    labels = df["label"].tolist()
    scores: list[np.ndarray] = []
    targets: list[int] = []
    for start in range(0, len(ids), batch_size):
        batch = collate(ids[start:start + batch_size], labels[start:start + batch_size]).to(device)
        if target == "label":
            tgt = batch.labels
        else:
            with torch.no_grad():
                tgt = model(batch.ids, batch.mask).logits.argmax(-1)
        s = method.attribute(batch, tgt).detach().cpu().numpy()
        lengths = batch.mask.sum(1).cpu().numpy()
        scores.extend(s[i, :n].astype(np.float64) for i, n in enumerate(lengths))
        targets.extend(tgt.cpu().tolist())
    tokens = [list(t[:max_length] if max_length else t) for t in df["tokens"]]
    return AttributionResult(method.name, scores, np.asarray(targets), tokens=tokens)
