"""Attention weights as an explanation: the model's own distribution over its inputs."""

from __future__ import annotations

import torch

from aine_lib.attribution.base import AttributionMethod


class AttentionWeights(AttributionMethod):
    """The attention distribution the model computes (independent of the target class)."""

    name = "attention"

    @torch.no_grad()
    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:
        out = self.model(batch.ids, batch.mask)
        return self._masked(out.attention, batch.mask)
