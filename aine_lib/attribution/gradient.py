"""Gradient importance as in Jain & Wallace 2019: |d y_hat / d e_t . e_t| with attention detached.

Gradients flow through the encoder but not through the attention weights
(they are computed, then treated as constants), so the score says how much
the output depends on a token through its representation, not through the
attention it receives. Computed with Captum's ``InputXGradient`` on the
embedding layer's output, summed over embedding dimensions, absolute value.
"""

from __future__ import annotations

import torch
from captum.attr import InputXGradient

from aine_lib.attribution.base import AttributionMethod


class GradientImportance(AttributionMethod):
    name = "gradient"

    def __init__(self, model: torch.nn.Module, detach_attention: bool = True):
        super().__init__(model)
        self.detach_attention = detach_attention

    def _probabilities(self, embeddings: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.model(ids, mask, embeddings=embeddings, detach_attention=self.detach_attention)
        return torch.softmax(out.logits, dim=-1)

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            embeddings = self.model.embed(batch.ids)
        ixg = InputXGradient(self._probabilities)
        attr = ixg.attribute(embeddings.requires_grad_(True), target=target,
                             additional_forward_args=(batch.ids, batch.mask))
        return self._masked(attr.sum(-1).abs().detach(), batch.mask)
