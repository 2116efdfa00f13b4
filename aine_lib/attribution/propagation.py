"""Attention propagated through the layers, and attention weighted by what it moves.

* ``rollout`` (Abnar & Zuidema 2020) -- ``Ã_l = 0.5·mean_h A_l + 0.5·I`` (the residual connection),
  rows renormalised; ``R = Ã_L ... Ã_1``; a classifier's score is ``R[readout, j]``. On an
  encoder-decoder the rollout runs through the encoder *and* the decoder: the encoder rollout maps
  memory to source tokens; in each decoder layer the self-attention mixes target rows and the
  cross-attention adds half of the attended memory, so step ``t`` ends as a distribution over source
  and target-prefix tokens; the source part is the score (the prefix part is ``last_target_scores``).
* ``flow`` (Abnar & Zuidema 2020) -- the maximum flow from input ``j`` to the readout position of the
  last layer in the layered graph whose edge capacities are ``Ã_l`` (classifiers; rows of ``Ã``
  renormalised to 1). One max-flow problem per token, solved exactly: SciPy's C max-flow on finely
  scaled integer capacities finds a minimum cut, whose capacity is summed in float64 (see
  :func:`attention_flow`); ``edge_threshold`` (default 0) may drop weak edges for speed. Cost grows as
  ``layers x T^2`` per token.
* ``norm`` (Kobayashi et al. 2020) -- ``|| Σ_h α^h_{i,j} f^h(x_j) ||`` in one layer, where
  ``f^h(x) = (x W_V^h + b_V^h) W_O^h`` is what token ``j`` contributes through head ``h``: attention
  weight *times* the size of what is moved. Classifiers: self-attention, readout row; encoder-decoders:
  a decoder layer's cross-attention, every step.

Scores cover all positions (special tokens included, exactly 0 at padding); metrics decide whether
specials count.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from aine_lib.attribution.base import AttributionMethod, readout_rows


def _needs_layers(adapter, name: str) -> None:
    if adapter.family == "classifier" and adapter.n_layers is None:
        raise adapter._not(name, "it needs attention per layer and head; use 'attention' for this model")


def residual_attention(attention: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, T, T]``: ``0.5 * mean_h A + 0.5 * I`` with rows renormalised (Abnar & Zuidema's Ã)."""
    a = attention.mean(1)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    a = 0.5 * a + 0.5 * eye
    return a / a.sum(-1, keepdim=True)


def rollout(attentions: tuple[torch.Tensor, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, T, T]``: ``Ã_L ... Ã_1``; row ``i`` is how much of position ``i``'s top state comes from each input."""
    result = None
    for a in attentions:
        r = residual_attention(a, mask)
        result = r if result is None else r @ result
    return result


def seq2seq_rollout(attentions: dict[str, tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(source [B, T, S], target prefix [B, T, T])`` parts of the encoder-decoder rollout."""
    enc = rollout(attentions["encoder_self"])                              # memory row -> source tokens
    first = attentions["cross"][0]
    B, _, T, S = first.shape
    from_tgt = torch.eye(T, device=first.device).expand(B, T, T).clone()
    from_src = torch.zeros(B, T, S, device=first.device)
    for self_a, cross_a in zip(attentions["decoder_self"], attentions["cross"]):
        mix = residual_attention(self_a)
        from_tgt, from_src = mix @ from_tgt, mix @ from_src
        c = cross_a.mean(1) @ enc                                            # [B, T, S]
        from_tgt, from_src = 0.5 * from_tgt, 0.5 * from_src + 0.5 * c
    return from_src, from_tgt


class Rollout(AttributionMethod):
    name = "rollout"
    families = ("classifier", "seq2seq")

    def __init__(self, adapter):
        super().__init__(adapter)
        _needs_layers(adapter, self.name)

    @torch.no_grad()
    def attribute(self, batch, target=None) -> torch.Tensor:
        if self.is_seq2seq:
            src, tgt = seq2seq_rollout(self.adapter.forward(batch).attentions)
            self.last_target_scores = tgt
            return src * self.adapter.step_mask(batch)
        r = rollout(self.adapter.forward(batch).attentions, batch.mask)
        return self._masked(readout_rows(r, self.adapter.readout_positions(batch)), batch.mask)


def attention_flow(residual: list[np.ndarray], edge_threshold: float = 0.0, sink: int = 0) -> np.ndarray:
    """Max flow from each input position to position ``sink`` of the last layer, for one example.

    ``residual`` is one ``[T, T]`` matrix per layer (rows = receiving position,
    columns = sending position, Abnar & Zuidema's Ã: attention averaged over heads, mixed half and
    half with the identity and rows renormalised to sum to 1), real tokens only.
    Node ``(l, i)`` is position ``i`` after layer ``l`` (``l = 0`` the input);
    edge ``(l-1, j) -> (l, i)`` has capacity ``Ã_l[i, j]``; only the sink is kept in the last layer.
    Returns ``[T]``.

    Exact, not approximate: SciPy's max-flow (C, integer capacities) runs on the capacities scaled
    as finely as int32 allows and rounded down; its residual graph gives a minimum cut, and the
    flow is that cut's capacity summed in float64 from the unrounded ``Ã`` (max flow = min cut). The
    rounding can only matter where two cuts differ by less than ``T`` units of the scale (about
    ``T^2 / 2^31``). Edges below ``edge_threshold`` (default 0: none) are dropped, for speed.
    """
    L = len(residual)
    T = residual[0].shape[0]
    scale = (2 ** 31 - 1) // (T + 2)             # no capacity, and no flow (at most T), overflows int32
    n_nodes = (L + 1) * T + 1                    # + a dedicated sink node
    rows, cols, caps = [], [], []
    for layer, a in enumerate(residual, start=1):
        receivers = [sink] if layer == L else range(T)
        for i in receivers:
            keep = np.nonzero((a[i] >= edge_threshold) & (a[i] > 0))[0]
            rows.append((layer - 1) * T + keep)
            cols.append(np.full(len(keep), layer * T + i))
            caps.append(np.asarray(a[i, keep], dtype=np.float64))
    sink_node = n_nodes - 1
    rows.append(np.array([L * T + sink]))
    cols.append(np.array([sink_node]))
    caps.append(np.array([float(T + 1)]))        # never the bottleneck
    rows, cols, caps = np.concatenate(rows), np.concatenate(cols), np.concatenate(caps)
    graph = csr_matrix((np.floor(caps * scale).astype(np.int32), (rows, cols)), shape=(n_nodes, n_nodes))
    flows = np.zeros(T)
    for j in range(T):
        flow = maximum_flow(graph, j, sink_node).flow
        residual_graph = (graph - flow).tocsr()
        residual_graph.data[residual_graph.data < 0] = 0
        residual_graph.eliminate_zeros()
        reachable = np.zeros(n_nodes, dtype=bool)
        reachable[breadth_first_order(residual_graph, j, directed=True, return_predecessors=False)] = True
        crossing = reachable[rows] & ~reachable[cols]
        flows[j] = float(caps[crossing].sum())
    return flows


class AttentionFlow(AttributionMethod):
    name = "flow"

    def __init__(self, adapter, edge_threshold: float = 0.0):
        super().__init__(adapter)
        _needs_layers(adapter, self.name)
        if edge_threshold < 0:
            raise ValueError(f"edge_threshold must be >= 0, got {edge_threshold}")
        self.edge_threshold = edge_threshold

    def options(self) -> dict:
        return {"edge_threshold": self.edge_threshold}

    @torch.no_grad()
    def attribute(self, batch, target=None) -> torch.Tensor:
        residual = [residual_attention(a, batch.mask).cpu().numpy() for a in self.adapter.forward(batch).attentions]
        readout = self.adapter.readout_positions(batch).tolist()
        scores = torch.zeros(batch.ids.shape, dtype=torch.float32)
        for b, n in enumerate(batch.mask.sum(1).tolist()):
            # the real tokens of a row: right padding keeps them first; left padding (XLNet) last
            idx = np.nonzero(batch.mask[b].cpu().numpy())[0]
            sink = int(np.searchsorted(idx, readout[b]))
            if sink >= n or idx[sink] != readout[b]:
                raise ValueError(f"example {b}: the readout position {readout[b]} is padding")
            sub = [r[b][np.ix_(idx, idx)] for r in residual]
            scores[b, torch.as_tensor(idx)] = torch.from_numpy(
                attention_flow(sub, self.edge_threshold, sink=sink)).float()
        return self._masked(scores.to(batch.ids.device), batch.mask)


class NormBased(AttributionMethod):
    name = "norm"
    families = ("classifier", "seq2seq")

    def __init__(self, adapter, layer: int = -1):
        super().__init__(adapter)
        _needs_layers(adapter, self.name)
        if not adapter.has_norm_terms:
            raise adapter._not("norm-based weights", "they need each head's value vectors and output projection, "
                               "which aine reads for BERT-, DistilBERT-, RoBERTa-, Marian/BART- and T5-style "
                               "models (aine_lib.models.hf.NORM_MODULES) and the study's own Transformers")
        self.layer = layer

    def options(self) -> dict:
        return {"layer": self.layer}

    @torch.no_grad()
    def attribute(self, batch, target=None) -> torch.Tensor:
        alpha, f = self.adapter.norm_terms(batch, self.layer)          # [B, h, Q, K], [B, h, K, d]
        if self.is_seq2seq:
            moved = torch.einsum("bhts,bhsd->btsd", alpha, f)
            return moved.norm(dim=-1) * self.adapter.step_mask(batch)
        alpha = readout_rows(alpha, self.adapter.readout_positions(batch))   # [B, h, T]
        moved = torch.einsum("bht,bhtd->btd", alpha, f)                     # Σ_h α^h f^h(x_t)
        return self._masked(moved.norm(dim=-1), batch.mask)
