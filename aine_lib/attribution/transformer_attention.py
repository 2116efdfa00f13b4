"""Explanations read from a Transformer's attention, for :class:`~aine_lib.models.transformer_encoder.TransformerClassifier`.

The classifier reads the [CLS] state (position 0) of the last layer, so every
method here scores input token ``j`` by what reaches [CLS] from it:

* ``attention_cls_last`` -- raw attention of [CLS] to ``j`` in the last layer,
  mean over heads; ``attention_cls_mean`` -- the same averaged over all layers;
  ``attention_layer_head`` -- one chosen ``layer`` and ``head`` (or mean over heads).
* ``rollout`` (Abnar & Zuidema 2020) -- ``Ã_l = 0.5·mean_h A_l + 0.5·I``
  (the residual connection), rows renormalised; ``R = Ã_L ... Ã_1``; score
  ``R[CLS, j]``.
* ``flow`` (Abnar & Zuidema 2020) -- the maximum flow from input ``j`` to the
  last layer's [CLS] in the layered graph whose edge capacities are ``Ã_l``.
  One max-flow problem per token; solved with SciPy's C implementation
  (``scipy.sparse.csgraph.maximum_flow``) on integer capacities (``Ã`` x
  ``capacity_scale``), with edges below ``edge_threshold`` dropped and only
  [CLS] kept in the last layer. Cost grows as ``layers x T^2`` per token (so
  ``T^3`` per example): tractable for sentences, slow for long documents
  (see ``benchmarks/attribution.py``).
* ``norm`` (Kobayashi et al. 2020) -- ``|| Σ_h α^h_{CLS,j} f^h(x_j) ||`` in the
  last layer, where ``f^h(x) = (x W_V^h + b_V^h) W_O^h`` is what token ``j``
  contributes through head ``h``: attention weight *times* the size of what is
  moved.
* ``grad_attention`` -- ``mean_h (∂y/∂A ⊙ A)^+`` in the last layer, [CLS] row:
  attention weighted by its gradient (Grad-CAM's recipe applied to attention).
* ``chefer`` (Chefer, Gur & Wolf 2021, "Generic Attention-model
  Explainability") -- ``R = I``; for each layer ``R += Ā_l R`` with
  ``Ā_l = mean_h (∂y/∂A_l ⊙ A_l)^+``; score ``R[CLS, j]``. ``y`` is the
  target class's logit, as in the paper.

Scores are ``[B, T]`` over all positions (special tokens included, exactly 0
at padding); metrics decide whether specials count.
"""

from __future__ import annotations

import numpy as np
import torch

from aine_lib.attribution.base import AttributionMethod


class _TransformerMethod(AttributionMethod):
    requires = "attentions"

    def __init__(self, model: torch.nn.Module):
        super().__init__(model)
        if not hasattr(model, "layers") or not hasattr(model.cfg, "heads"):
            raise TypeError(f"{self.name} needs a TransformerClassifier (attention per layer and head), "
                            f"got {type(model).__name__}; use 'attention' for the RNN models")

    def _outputs(self, batch):
        with torch.no_grad():
            return self.model(batch.ids, batch.mask)


class RawAttentionCLSLast(_TransformerMethod):
    name = "attention_cls_last"

    def attribute(self, batch, target):
        return self._masked(self._outputs(batch).attentions[-1][:, :, 0, :].mean(1), batch.mask)


class RawAttentionCLSMean(_TransformerMethod):
    name = "attention_cls_mean"

    def attribute(self, batch, target):
        maps = torch.stack(self._outputs(batch).attentions)          # [L, B, h, T, T]
        return self._masked(maps[:, :, :, 0, :].mean(dim=(0, 2)), batch.mask)


class RawAttentionLayerHead(_TransformerMethod):
    """[CLS] row of one layer's attention: one head, or the mean over heads (``head=None``)."""

    name = "attention_layer_head"

    def __init__(self, model, layer: int = -1, head: int | None = None):
        super().__init__(model)
        L, H = model.cfg.layers, model.cfg.heads
        if not -L <= layer < L:
            raise ValueError(f"layer must be in [-{L}, {L}), got {layer}")
        if head is not None and not 0 <= head < H:
            raise ValueError(f"head must be in [0, {H}) or None, got {head}")
        self.layer, self.head = layer, head

    def attribute(self, batch, target):
        a = self._outputs(batch).attentions[self.layer][:, :, 0, :]
        a = a.mean(1) if self.head is None else a[:, self.head]
        return self._masked(a, batch.mask)


def residual_attention(attention: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, T, T]``: ``0.5 * mean_h A + 0.5 * I`` with rows renormalised (Abnar & Zuidema's Ã)."""
    a = attention.mean(1)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    a = 0.5 * a + 0.5 * eye
    return a / a.sum(-1, keepdim=True)


def rollout(attentions: tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
    """``[B, T, T]``: ``Ã_L ... Ã_1``; row ``i`` is how much of position ``i``'s top state comes from each input."""
    result = None
    for a in attentions:
        r = residual_attention(a, mask)
        result = r if result is None else r @ result
    return result


class Rollout(_TransformerMethod):
    name = "rollout"

    def attribute(self, batch, target):
        return self._masked(rollout(self._outputs(batch).attentions, batch.mask)[:, 0, :], batch.mask)


def attention_flow(residual: list[np.ndarray], capacity_scale: float = 1e6, edge_threshold: float = 1e-4,
                   sink: int = 0) -> np.ndarray:
    """Max flow from each input position to position ``sink`` of the last layer, for one example.

    ``residual`` is one ``[T, T]`` matrix per layer (rows = receiving position,
    columns = sending position, Abnar & Zuidema's Ã), real tokens only.
    Node ``(l, i)`` is position ``i`` after layer ``l`` (``l = 0`` the input);
    edge ``(l-1, j) -> (l, i)`` has capacity ``Ã_l[i, j]``. Returns ``[T]``.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    L = len(residual)
    T = residual[0].shape[0]
    n_nodes = (L + 1) * T + 1                      # + a dedicated sink node
    rows, cols, caps = [], [], []
    for layer, a in enumerate(residual, start=1):
        receivers = [sink] if layer == L else range(T)
        for i in receivers:
            keep = np.nonzero(a[i] >= edge_threshold)[0]
            rows.extend((layer - 1) * T + keep)
            cols.extend([layer * T + i] * len(keep))
            caps.extend(np.rint(a[i, keep] * capacity_scale).astype(np.int64))
    sink_node = n_nodes - 1
    rows.append(L * T + sink)
    cols.append(sink_node)
    caps.append(int(capacity_scale) * T)           # never the bottleneck
    graph = csr_matrix((np.asarray(caps, dtype=np.int32), (rows, cols)), shape=(n_nodes, n_nodes))
    flows = np.zeros(T)
    for j in range(T):
        flows[j] = maximum_flow(graph, j, sink_node).flow_value / capacity_scale
    return flows


class AttentionFlow(_TransformerMethod):
    name = "flow"

    def __init__(self, model, capacity_scale: float = 1e6, edge_threshold: float = 1e-4):
        super().__init__(model)
        self.capacity_scale, self.edge_threshold = capacity_scale, edge_threshold

    def attribute(self, batch, target):
        out = self._outputs(batch)
        residual = [residual_attention(a, batch.mask).cpu().numpy() for a in out.attentions]
        scores = torch.zeros(batch.ids.shape, dtype=torch.float32)
        for b, n in enumerate(batch.mask.sum(1).tolist()):
            scores[b, :n] = torch.from_numpy(attention_flow([r[b, :n, :n] for r in residual], self.capacity_scale,
                                                            self.edge_threshold)).float()
        return self._masked(scores.to(batch.ids.device), batch.mask)


class NormBased(_TransformerMethod):
    name = "norm"

    def __init__(self, model, layer: int = -1):
        super().__init__(model)
        self.layer = layer

    def attribute(self, batch, target):
        out = self._outputs(batch)
        cfg = self.model.cfg
        attention = out.attentions[self.layer][:, :, 0, :]                    # [B, h, T]  ([CLS] row)
        values = out.values[self.layer]                                        # [B, h, T, dh]
        w_o = self.model.layers[self.layer].attention.output.weight            # [d, h*dh]
        w_o = w_o.view(cfg.hidden, cfg.heads, cfg.head_dim).permute(1, 2, 0)   # [h, dh, d]
        with torch.no_grad():
            f = torch.einsum("bhtk,hkd->bhtd", values, w_o)                    # f^h(x_t)
            moved = torch.einsum("bht,bhtd->btd", attention, f)               # Σ_h α^h f^h(x_t)
        return self._masked(moved.norm(dim=-1), batch.mask)


def _attention_gradients(model, batch, target) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    with torch.enable_grad():
        out = model(batch.ids, batch.mask)
        logit = out.logits.gather(-1, target.view(-1, 1)).sum()
        grads = torch.autograd.grad(logit, out.attentions)
    return tuple(a.detach() for a in out.attentions), tuple(g.detach() for g in grads)


class GradAttention(_TransformerMethod):
    name = "grad_attention"

    def attribute(self, batch, target):
        attentions, grads = _attention_gradients(self.model, batch, target)
        weighted = (grads[-1] * attentions[-1]).clamp(min=0).mean(1)            # [B, T, T]
        return self._masked(weighted[:, 0, :], batch.mask)


class Chefer(_TransformerMethod):
    name = "chefer"

    def attribute(self, batch, target):
        attentions, grads = _attention_gradients(self.model, batch, target)
        B, T = batch.ids.shape
        R = torch.eye(T, dtype=attentions[0].dtype, device=batch.ids.device).expand(B, T, T).clone()
        for a, g in zip(attentions, grads):
            cam = (g * a).clamp(min=0).mean(1)
            R = R + cam @ R
        return self._masked(R[:, 0, :], batch.mask)
