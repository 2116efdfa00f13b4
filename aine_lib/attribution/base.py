"""The one result type and base class every explanation method shares.

Attention is just one more method here, compared with the others on equal
terms: each method is a class constructed with the model, with one verb,
``attribute(batch, target)``, returning a ``[B, T]`` score per input token
(exactly 0 at padding). :func:`attribute_dataset` runs a method over a whole
split in batches and returns an :class:`AttributionResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch


@dataclass
class AttributionResult:
    """Per-example token scores of one method (inseq's FeatureAttributionOutput, flattened).

    ``scores[i]`` has one entry per token of example ``i`` (padding removed);
    ``target[i]`` is the class the scores explain; ``tokens[i]`` the words.
    """

    method: str
    scores: list[np.ndarray]
    target: np.ndarray
    tokens: list[list[str]] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.target):
            raise ValueError(f"{len(self.scores)} score rows but {len(self.target)} targets")
        if self.tokens is not None:
            for i, (s, t) in enumerate(zip(self.scores, self.tokens)):
                if len(s) != len(t):
                    raise ValueError(f"example {i}: {len(s)} scores for {len(t)} tokens")

    def __len__(self) -> int:
        return len(self.scores)


class AttributionMethod:
    """Base class: ``method = Cls(model); scores = method.attribute(batch, target)``."""

    name: ClassVar[str] = ""
    #: True if scores are signed (gradient x input); False if they are magnitudes or weights.
    signed: ClassVar[bool] = False

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def attribute(self, batch, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def _masked(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, scores, torch.zeros_like(scores))
