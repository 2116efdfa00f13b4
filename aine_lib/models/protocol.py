"""What every explanation method may ask of a model: the adapter protocol.

Attribution methods never touch a model's modules. They talk to an adapter,
one per model family, that answers a small set of questions:

* :class:`ClassifierAdapter` (RNN/CNN/Average classifiers, our Transformer
  encoder, any Hugging Face ``AutoModelForSequenceClassification``):
  ``embed`` (the input embeddings gradients are taken with respect to),
  ``logits`` (from ids, or from replacement embeddings), ``attention_weights``
  (a single-distribution model's attention), ``forward`` (attention maps per
  layer and head, in the autograd graph), ``norm_terms`` (what each head moves,
  for Kobayashi et al.'s norm), ``hidden_states``, ``readout_positions`` (the
  position whose top state the classifier reads: [CLS] = 0, XLNet's last token),
  ``special_mask`` and ``reference_ids`` (the "absent" input).
* :class:`Seq2SeqAdapter` (our encoder-decoder, Hugging Face
  ``AutoModelForSeq2SeqLM``): the same, teacher-forced on a
  :class:`~aine_lib.models.seq2seq_training.Seq2SeqBatch`, with ``target_log_probs``
  (``log p(y_t | x, y_<t)`` per step) in place of class logits and attention
  maps split into ``encoder_self``, ``decoder_self`` and ``cross``.

A question an adapter cannot answer raises :class:`MethodNotApplicable` (or
:class:`AttentionUnavailableError`) with the reason and the fix; it never
returns zeros.

Shapes: ``B`` examples, ``T`` input (source) positions, ``H`` heads, ``d`` model
width, ``S`` source positions and ``T`` target steps for encoder-decoders.
Attention maps are ``[B, H, queries, keys]`` with rows summing to 1 over real keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn


class MethodNotApplicable(TypeError):
    """An explanation method asked a model for something the model does not have (the message says why)."""


class AttentionUnavailableError(MethodNotApplicable):
    """The model computes no attention probabilities (e.g. loaded with SDPA/flash attention)."""


@dataclass
class TokenBatch:
    """Right-padded ids, the mask of real tokens, and any extra model inputs (e.g. ``token_type_ids``)."""

    ids: torch.Tensor                      # [B, T] long
    mask: torch.Tensor                     # [B, T] bool, True at real tokens
    extra: dict = field(default_factory=dict)

    def to(self, device) -> "TokenBatch":
        return TokenBatch(self.ids.to(device), self.mask.to(device), {k: v.to(device) for k, v in self.extra.items()})

    def __len__(self) -> int:
        return self.ids.shape[0]


@dataclass
class ClassifierForward:
    """One forward pass of a classifier with its internals."""

    logits: torch.Tensor                                 # [B, C]
    attentions: tuple[torch.Tensor, ...] = ()            # L x [B, H, T, T]
    hidden_states: tuple[torch.Tensor, ...] = ()         # L + 1 x [B, T, d]


@dataclass
class Seq2SeqForward:
    """One teacher-forced pass of an encoder-decoder with its attention maps."""

    logits: torch.Tensor                                 # [B, T, V]
    attentions: dict[str, tuple[torch.Tensor, ...]]      # encoder_self L x [B,H,S,S]; decoder_self [B,H,T,T]; cross [B,H,T,S]


def move_padding(mask: torch.Tensor, *tensors: torch.Tensor, side: str) -> tuple[torch.Tensor, ...]:
    """``(mask, *tensors)`` with each row's real tokens moved, in order, to the start (``side="right"``:
    padding on the right) or to the end (``side="left"``), whichever side the rows had their padding on."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    key = (~mask if side == "right" else mask).long()
    order = torch.sort(key, dim=-1, stable=True).indices
    return tuple(t.gather(1, order) for t in (mask, *tensors))


class ModelAdapter:
    """Shared part of both families: a name, the wrapped module, its device."""

    family: ClassVar[str] = ""

    def __init__(self, model: nn.Module, name: str | None = None):
        self.model = model
        self.name = name or type(model).__name__

    #: whether ``norm_terms`` can answer (value vectors and output projection known)
    has_norm_terms: bool = False
    #: whether the attention maps ``forward`` returns are the ones the model computes with (so they have gradients)
    attention_has_gradient: bool = True

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters(), torch.empty(0)).device

    def eval(self) -> "ModelAdapter":
        self.model.eval()
        return self

    def _not(self, what: str, why: str) -> MethodNotApplicable:
        return MethodNotApplicable(f"{self.name} ({type(self).__name__}) cannot give {what}: {why}")


class ClassifierAdapter(ModelAdapter):
    """A text classifier seen through the questions attribution methods ask (override what the model has)."""

    family = "classifier"
    #: number of attention layers and heads (None: no per-layer, per-head attention)
    n_layers: int | None = None
    n_heads: int | None = None
    pad_id: int = 0
    mask_id: int | None = None
    #: where padding goes in a batch this model reads ("left" for XLNet, which classifies its last position)
    padding_side: str = "right"
    #: ids of the structural tokens ([CLS], [SEP], <s>, </s>); none for the word-level models
    special_ids: tuple[int, ...] = ()

    # ----- inputs ----------------------------------------------------------------
    def special_mask(self, ids: torch.Tensor) -> torch.Tensor:
        """True at special tokens (:attr:`special_ids`): never perturbed, never attributed by perturbation."""
        return torch.isin(ids, torch.as_tensor(self.special_ids, dtype=ids.dtype, device=ids.device))

    def reference_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The "absent" input: real, non-special tokens replaced by the padding id (special tokens kept)."""
        return ids.masked_fill(mask & ~self.special_mask(ids), self.pad_id)

    def readout_positions(self, batch) -> torch.Tensor:
        """``[B]``: the position whose last-layer state the classifier reads ([CLS] = 0 by default)."""
        return torch.zeros(batch.ids.shape[0], dtype=torch.long, device=batch.ids.device)

    def pad_like_model(self, ids: torch.Tensor, mask: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Right-padded ``(ids, mask, *others)`` with the padding moved to the model's :attr:`padding_side`."""
        if self.padding_side == "right":
            return (ids, mask, *others)
        moved = move_padding(mask, ids, *others, side=self.padding_side)
        return (moved[1], moved[0], *moved[2:])

    # ----- computations ------------------------------------------------------------
    def embed(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, batch, embeddings: torch.Tensor | None = None, detach_attention: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch) -> ClassifierForward:
        """Logits, attention maps per layer (in the autograd graph) and hidden states."""
        raise self._not("attention per layer and head", "it has a single attention distribution; use 'attention'")

    def attention_weights(self, batch) -> torch.Tensor:
        """``[B, T]``: a single-distribution model's attention over its inputs."""
        raise self._not("a single attention distribution", "it is a Transformer; use attention_layer_head or "
                        "attention with layer=/head=")

    def norm_terms(self, batch, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha [B, H, T, T], f [B, H, T, d])``: layer's attention and ``f^h(x_j) = v_j^h W_O^h``."""
        raise self._not("value vectors and the output projection", "norm-based weights need both")


class Seq2SeqAdapter(ModelAdapter):
    """An encoder-decoder seen through the questions attribution methods ask, teacher-forced on a batch."""

    family = "seq2seq"
    encoder_layers: int = 0
    decoder_layers: int = 0
    n_heads: int = 0

    def embed(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(source [B, S, d], target [B, T, d])`` input embeddings."""
        raise NotImplementedError

    def forward(self, batch) -> Seq2SeqForward:
        raise NotImplementedError

    def target_log_probs(self, batch, src_embeddings: torch.Tensor | None = None,
                         tgt_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T]``: ``log p(y_t | x, y_<t)`` of the batch's target tokens (0 at padding)."""
        logits = self.logits(batch, src_embeddings, tgt_embeddings)
        logp = torch.log_softmax(logits, -1).gather(-1, batch.tgt_out.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return logp * batch.tgt_mask

    def logits(self, batch, src_embeddings=None, tgt_embeddings=None) -> torch.Tensor:
        raise NotImplementedError

    def norm_terms(self, batch, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha [B, H, T, S], f [B, H, S, d])``: a decoder layer's cross-attention and what each head moves."""
        raise self._not("cross-attention value vectors", "norm-based weights need them")

    def without_source_positions(self, batch, rows: torch.Tensor, keep: torch.Tensor):
        """The batch's ``rows`` with the source tokens where ``keep`` is False removed (the source closes up)."""
        index = rows.tolist()
        return replace(batch, src=torch.stack([batch.src[i][keep[i]] for i in index]),
                       src_mask=torch.stack([batch.src_mask[i][keep[i]] for i in index]),
                       tgt_in=batch.tgt_in[rows], tgt_out=batch.tgt_out[rows], tgt_mask=batch.tgt_mask[rows])

    def step_mask(self, batch) -> torch.Tensor:
        """``[B, T, S]``: True where step t is a real target step and s a real source token."""
        return batch.tgt_mask[:, :, None] & batch.src_mask[:, None, :]

    def prefix_mask(self, batch) -> torch.Tensor:
        """``[B, T, T]``: True where position j of the target input is visible to step t (j <= t)."""
        return (batch.tgt_mask[:, :, None] & batch.tgt_mask[:, None, :]).tril()
