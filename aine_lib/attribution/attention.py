"""Attention weights as an explanation: the model's own distribution over its inputs.

One method, ``attention``, for every family:

* a single-distribution model (BiLSTM/CNN/Average with attention): that distribution;
* a Transformer classifier: the row of the readout position ([CLS] = 0; XLNet's last token) in
  layer ``layer`` (default the last; ``"mean"`` averages all layers), head ``head`` (``None``:
  the mean over heads);
* an encoder-decoder: the cross-attention of every target step to every source token, same options.

The study's named variants (``attention_cls_last``, ``attention_cls_mean``, ``attention_layer_head``,
``cross_attention``, ``cross_attention_mean``) are the same method with fixed options
(see :data:`aine_lib.attribution.registry.VARIANTS`).
"""

from __future__ import annotations

import torch

from aine_lib.attribution.base import AttributionMethod, readout_rows


def _check_layer_head(layer, head, n_layers: int, n_heads: int) -> None:
    if layer != "mean" and not (isinstance(layer, int) and -n_layers <= layer < n_layers):
        raise ValueError(f"layer must be 'mean' or an int in [-{n_layers}, {n_layers}), got {layer!r}")
    if head is not None and not 0 <= head < n_heads:
        raise ValueError(f"head must be in [0, {n_heads}) or None, got {head}")


def _select(maps: tuple[torch.Tensor, ...], layer, head) -> torch.Tensor:
    """Stack ``L x [B, H, Q, K]``, keep ``layer`` (or all) and ``head`` (or all), mean over what is kept."""
    stacked = torch.stack(maps)                                           # [L, B, H, Q, K]
    stacked = stacked if layer == "mean" else stacked[layer].unsqueeze(0)
    stacked = stacked if head is None else stacked[:, :, head].unsqueeze(2)
    return stacked


class AttentionWeights(AttributionMethod):
    name = "attention"
    families = ("classifier", "seq2seq")

    def __init__(self, adapter, layer: int | str = -1, head: int | None = None):
        super().__init__(adapter)
        self.layer, self.head = layer, head
        if self.is_seq2seq:
            _check_layer_head(layer, head, adapter.decoder_layers, adapter.n_heads)
        elif adapter.n_layers is None:
            if (layer, head) != (-1, None):
                raise ValueError(f"{adapter.name} has one attention distribution: layer and head do not apply")
        else:
            _check_layer_head(layer, head, adapter.n_layers, adapter.n_heads)

    def options(self) -> dict:
        return {"layer": self.layer, "head": self.head}

    @torch.no_grad()
    def attribute(self, batch, target=None) -> torch.Tensor:
        if self.is_seq2seq:
            maps = torch.stack(self.adapter.forward(batch).attentions["cross"])          # [L, B, h, T, S]
            maps = maps.mean(0) if self.layer == "mean" else maps[self.layer]
            maps = maps.mean(1) if self.head is None else maps[:, self.head]
            return maps * self.adapter.step_mask(batch)
        if self.adapter.n_layers is None:
            return self._masked(self.adapter.attention_weights(batch), batch.mask)
        maps = _select(self.adapter.forward(batch).attentions, self.layer, self.head)  # [l, B, h, T, T]
        rows = self.adapter.readout_positions(batch)
        per_row = torch.stack([readout_rows(m, rows) for m in maps])                     # [l, B, h, T]
        return self._masked(per_row.mean(dim=(0, 2)), batch.mask)
