"""Incremental decoding for :class:`~aine_lib.models.transformer.Seq2SeqTransformer`: a key/value cache.

Re-running the decoder over the whole prefix at every generation step costs ``1 + 2 + ... + T`` decoder
positions per sentence. With the cache each step runs the decoder on the new token only:

* the cross-attention keys and values of the encoder output are projected once per sentence (beam search
  keeps them at batch 1 and lets the matmul broadcast them over the beams: no copy per beam);
* each decoder layer's self-attention keys and values gain one position per step, and beam search
  reorders them to the surviving hypotheses' parents.

The maths are the full decoder's, through the same modules (:meth:`MultiHeadAttention.attend
<aine_lib.models.transformer.MultiHeadAttention.attend>`): the causal mask is implicit (only past positions
are in the cache) and the source padding mask is the same. So a step's logits equal the teacher-forced
``decode``'s at that position up to float rounding, and greedy and beam search give the same tokens with and
without the cache (``tests/unit/test_decoding_cache.py``; the speed-up: ``benchmarks/seq2seq.py``).
Generation never uses head masks or attention transforms, so the cache has none.
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
from torch import nn


@dataclass
class KeyValueCache:
    """What a decoder step needs of the past: per decoder layer, split-head keys and values ``[B, h, T, d]``."""

    cross: list[tuple[torch.Tensor, torch.Tensor]]                 # of the encoder output: T = source length
    src_mask: torch.Tensor                                          # [B, S] (batch 1 broadcasts, as ``cross``)
    self_attention: list[tuple[torch.Tensor, torch.Tensor] | None]  # of the target prefix: T = ``length``
    length: int = 0                                                 # target positions decoded so far

    @classmethod
    def for_memory(cls, layers: list[nn.Module], memory: torch.Tensor, src_mask: torch.Tensor
                   ) -> KeyValueCache:
        """An empty target prefix over the encoder output ``memory`` ``[B, S, d_model]``."""
        cross = []
        for layer in layers:
            attention = layer.cross_attention
            cross.append((attention.split_heads(attention.key(memory)),
                          attention.split_heads(attention.value(memory))))
        return cls(cross, src_mask, [None] * len(layers))

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the prefix rows ``index`` (beam search: each surviving hypothesis's parent), in that order.
        Keys and values of a batch-1 memory stay shared; a batched memory's rows are selected too."""
        self.self_attention = [None if kv is None else (kv[0].index_select(0, index), kv[1].index_select(0, index))
                               for kv in self.self_attention]
        if self.src_mask.shape[0] > 1:
            self.cross = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cross]
            self.src_mask = self.src_mask.index_select(0, index)


def decoder_layer_step(layer: nn.Module, y: torch.Tensor, cache: KeyValueCache, i: int) -> torch.Tensor:
    """Decoder layer ``i`` on the newest target position ``y`` ``[B, 1, d_model]``: what
    :meth:`DecoderLayer.forward <aine_lib.models.transformer.DecoderLayer.forward>` computes for the last
    position of the prefix, appending the position's self-attention keys and values to ``cache``."""
    own, cross = layer.self_attention, layer.cross_attention
    k, v = own.split_heads(own.key(y)), own.split_heads(own.value(y))
    if cache.self_attention[i] is not None:
        past_k, past_v = cache.self_attention[i]
        k, v = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
    cache.self_attention[i] = (k, v)
    a, _ = own.attend(own.split_heads(own.query(y)), k, v, None)         # every cached position is in the past
    y = layer.norm1(y + layer.dropout(a))
    memory_k, memory_v = cache.cross[i]
    c, _ = cross.attend(cross.split_heads(cross.query(y)), memory_k, memory_v, cache.src_mask[:, None, None, :])
    y = layer.norm2(y + layer.dropout(c))
    return layer.norm3(y + layer.dropout(layer.feed_forward(y)))
