"""The base class every explanation method shares, for every model family.

A method is a class constructed with a model adapter (:mod:`aine_lib.models.protocol`)
and its options, with one verb, ``attribute(batch, target)``:

* classifiers: a ``[B, T]`` score per input token (exactly 0 at padding), explaining class ``target [B]``;
* encoder-decoders: a ``[B, T, S]`` score of every source token for every target step of the
  teacher-forced batch (``target`` is the batch's own target tokens); gradient methods also leave
  ``[B, T, T]`` target-prefix scores in ``last_target_scores``.

``last_delta`` holds the completeness (convergence) error of the last call where the method
defines one (integrated gradients). A method that cannot apply to a model raises
:class:`~aine_lib.models.protocol.MethodNotApplicable` from its constructor, saying why.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from aine_lib.models.protocol import MethodNotApplicable, ModelAdapter, Seq2SeqAdapter


#: Tokens per model call for the methods that evaluate many variants of an input (LOO, occlusion, LIME,
#: KernelSHAP). On a 2-core CPU, MiniLM's forward throughput is flat up to ~4,096 tokens per call and falls
#: beyond it (at 128 tokens a row: 4,200 tokens/s for 4-32 rows, 2,800 for 64, 1,700 for 128; the attention
#: tensors leave the caches), so LOO in chunks of 512 variants ran 5.6x slower than in chunks of 32.
#: The results do not depend on it beyond the last bits of float32 sums.
TOKENS_PER_CALL = 4096


def rows_per_call(width: int, tokens: int = TOKENS_PER_CALL) -> int:
    """How many rows of ``width`` tokens one model call takes under a budget of ``tokens``."""
    return max(1, tokens // max(1, width))


class AttributionMethod:
    """Base class: ``method = Cls(adapter, **options); scores = method.attribute(batch, target)``."""

    name: ClassVar[str] = ""
    #: True if scores are signed (gradient x input); False if they are magnitudes or weights.
    signed: ClassVar[bool] = False
    #: the model families the method is defined for
    families: ClassVar[tuple[str, ...]] = ("classifier",)

    def __init__(self, adapter: ModelAdapter):
        if not isinstance(adapter, ModelAdapter):
            raise TypeError(f"{type(self).__name__} takes a model adapter; wrap the model with "
                            "aine_lib.attribution.as_adapter(model) (explain() does this for you)")
        if adapter.family not in self.families:
            raise MethodNotApplicable(f"{self.name!r} is defined for {'/'.join(self.families)} models, not for "
                                      f"{adapter.name} ({adapter.family})")
        self.adapter = adapter
        self.last_delta: torch.Tensor | None = None
        self.last_target_scores: torch.Tensor | None = None

    @property
    def model(self):
        return self.adapter.model

    @property
    def is_seq2seq(self) -> bool:
        return isinstance(self.adapter, Seq2SeqAdapter)

    def options(self) -> dict:
        """The options this instance was built with (recorded in every Explanation)."""
        return {}

    def attribute(self, batch, target: torch.Tensor | None) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def _masked(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, scores, torch.zeros_like(scores))


def readout_rows(maps: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``maps [B, ..., T, T]`` -> ``[B, ..., T]``: the row of each example's readout position."""
    index = rows.view(-1, *([1] * (maps.dim() - 2)), 1).expand(*maps.shape[:-2], 1, maps.shape[-1])
    return maps.gather(-2, index).squeeze(-2)

