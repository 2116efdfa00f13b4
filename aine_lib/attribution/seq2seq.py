"""Explanations of each generated token of :class:`~aine_lib.models.transformer.Seq2SeqTransformer`.

For a source ``x`` and a generated (or reference) target ``y``, the model is
run teacher-forced on ``BOS y`` and every step ``t`` is explained: which source
tokens (and which earlier target tokens) made it emit ``y_t``? Every method
returns a ``[B, T, S]`` source-score tensor (steps x source positions, 0 at
padding); gradient methods also give ``[B, T, T]`` target-prefix scores.

* ``cross_attention`` -- cross-attention of step ``t`` to source ``s``, for one
  ``layer`` and ``head`` or averaged over heads (and over layers with
  ``layer=None``).
* ``rollout`` -- attention rollout through the encoder *and* the decoder
  (Abnar & Zuidema's residual-mixed ``0.5 A + 0.5 I`` at every sublayer):
  the encoder rollout maps memory to source tokens; in each decoder layer the
  self-attention mixes target rows, the cross-attention adds half of the
  attended memory, so row ``t`` ends as a distribution over source tokens and
  target-prefix tokens. The source part is returned.
* ``norm`` (Kobayashi et al. 2020) -- ``|| Σ_h α^h_{t,s} f^h(m_s) ||`` in a
  decoder layer's cross-attention.
* ``gradient_x_input`` and ``integrated_gradients`` -- of ``log p(y_t)``
  w.r.t. source and target embeddings (inseq-style); IG from zero embeddings
  (``n_steps`` midpoint Riemann steps).
* ``loo`` -- remove source token ``s`` (the source closes up), re-run the same
  target: the drop in ``log p(y_t)`` at every step at once.
"""

from __future__ import annotations

import torch

from aine_lib.models.seq2seq_training import Seq2SeqBatch
from aine_lib.models.transformer import PAD, Seq2SeqTransformer

SEQ2SEQ_METHODS = ("cross_attention", "cross_attention_mean", "rollout", "norm", "gradient_x_input",
                   "integrated_gradients", "loo")


def _step_mask(batch: Seq2SeqBatch) -> torch.Tensor:
    """``[B, T, S]``: True where step t is a real target step and s a real source token."""
    return batch.tgt_mask[:, :, None] & batch.src_mask[:, None, :]


@torch.no_grad()
def cross_attention(model: Seq2SeqTransformer, batch: Seq2SeqBatch, layer: int | None = -1,
                    head: int | None = None) -> torch.Tensor:
    out = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask)
    maps = torch.stack(out.attentions["cross"])                          # [L, B, h, T, S]
    maps = maps.mean(0) if layer is None else maps[layer]
    maps = maps.mean(1) if head is None else maps[:, head]
    return maps * _step_mask(batch)


def _residual(a: torch.Tensor) -> torch.Tensor:
    a = a.mean(1)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    a = 0.5 * a + 0.5 * eye
    return a / a.sum(-1, keepdim=True)


@torch.no_grad()
def rollout(model: Seq2SeqTransformer, batch: Seq2SeqBatch, return_target: bool = False):
    """Source part ``[B, T, S]`` of the encoder-decoder rollout (and the target part ``[B, T, T]``)."""
    out = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask)
    enc = None
    for a in out.attentions["encoder_self"]:
        r = _residual(a)
        enc = r if enc is None else r @ enc                                  # memory row -> source tokens
    B, T = batch.tgt_in.shape
    S = batch.src.shape[1]
    from_tgt = torch.eye(T, device=batch.src.device).expand(B, T, T).clone()
    from_src = torch.zeros(B, T, S, device=batch.src.device)
    for self_a, cross_a in zip(out.attentions["decoder_self"], out.attentions["cross"]):
        mix = _residual(self_a)
        from_tgt, from_src = mix @ from_tgt, mix @ from_src
        c = cross_a.mean(1) @ enc                                            # [B, T, S]
        from_tgt, from_src = 0.5 * from_tgt, 0.5 * from_src + 0.5 * c
    src_scores = from_src * _step_mask(batch)
    return (src_scores, from_tgt) if return_target else src_scores


@torch.no_grad()
def norm_based(model: Seq2SeqTransformer, batch: Seq2SeqBatch, layer: int = -1) -> torch.Tensor:
    out = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask)
    att = out.attentions["cross"][layer]                                     # [B, h, T, S]
    values = out.values["cross"][layer]                                      # [B, h, S, dh]
    mha = model.decoder[layer].cross_attention
    d = model.cfg.d_model
    w_o = mha.output.weight.view(d, mha.heads, mha.d_head).permute(1, 2, 0)  # [h, dh, d]
    f = torch.einsum("bhsk,hkd->bhsd", values, w_o)
    moved = torch.einsum("bhts,bhsd->btsd", att, f)
    return moved.norm(dim=-1) * _step_mask(batch)


def _target_logprob(model, batch, src_emb, tgt_emb) -> torch.Tensor:
    """``[B, T]`` log p(y_t | x, y_<t) for the batch's targets (0 at padding)."""
    logits = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask, src_embeddings=src_emb,
                   tgt_embeddings=tgt_emb).logits
    logp = torch.log_softmax(logits, -1).gather(-1, batch.tgt_out.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logp * (batch.tgt_out != PAD)


def gradient_x_input(model: Seq2SeqTransformer, batch: Seq2SeqBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``([B, T, S], [B, T, T])``: (∂ log p(y_t) / ∂e) · e summed over dimensions, source and target prefix."""
    src_emb = model.embed_source(batch.src).detach()
    tgt_emb = model.embed_target(batch.tgt_in).detach()
    T = batch.tgt_in.shape[1]
    src_scores, tgt_scores = [], []
    with torch.enable_grad():
        for t in range(T):
            s = src_emb.clone().requires_grad_(True)
            g = tgt_emb.clone().requires_grad_(True)
            logp = _target_logprob(model, batch, s, g)[:, t].sum()
            gs, gt = torch.autograd.grad(logp, (s, g))
            src_scores.append((gs * src_emb).sum(-1))
            tgt_scores.append((gt * tgt_emb).sum(-1))
    src = torch.stack(src_scores, 1) * _step_mask(batch)
    tgt = torch.stack(tgt_scores, 1) * (batch.tgt_mask[:, :, None] & batch.tgt_mask[:, None, :]).tril()
    return src, tgt


def integrated_gradients(model: Seq2SeqTransformer, batch: Seq2SeqBatch, n_steps: int = 16
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """IG of ``log p(y_t)`` from all-zero source and target embeddings (both scaled together).

    Completeness: source + target scores of step ``t`` sum to
    ``log p(y_t | x) - log p(y_t | zero embeddings)`` up to the Riemann error.
    """
    src_emb = model.embed_source(batch.src).detach()
    tgt_emb = model.embed_target(batch.tgt_in).detach()
    T = batch.tgt_in.shape[1]
    alphas = (torch.arange(n_steps, dtype=src_emb.dtype, device=src_emb.device) + 0.5) / n_steps   # midpoints
    src_total = torch.zeros(src_emb.shape[0], T, src_emb.shape[1], device=src_emb.device)
    tgt_total = torch.zeros(src_emb.shape[0], T, T, device=src_emb.device)
    with torch.enable_grad():
        for alpha in alphas:
            s = (alpha * src_emb).requires_grad_(True)
            g = (alpha * tgt_emb).requires_grad_(True)
            logp = _target_logprob(model, batch, s, g)
            for t in range(T):
                gs, gt = torch.autograd.grad(logp[:, t].sum(), (s, g), retain_graph=t < T - 1)
                src_total[:, t] += (gs * src_emb).sum(-1) / n_steps
                tgt_total[:, t] += (gt * tgt_emb).sum(-1) / n_steps
    return src_total * _step_mask(batch), tgt_total * (batch.tgt_mask[:, :, None] & batch.tgt_mask[:, None, :]).tril()


@torch.no_grad()
def leave_one_out(model: Seq2SeqTransformer, batch: Seq2SeqBatch) -> torch.Tensor:
    """``[B, T, S]``: log p(y_t | x) - log p(y_t | x without source token s)."""
    full = _target_logprob(model, batch, None, None)
    B, S = batch.src.shape
    out = torch.zeros(B, batch.tgt_in.shape[1], S, device=batch.src.device)
    lengths = batch.src_mask.sum(1)
    for s in range(S):
        keep = torch.ones_like(batch.src_mask)
        keep[:, s] = False
        rows = (lengths > 1) & batch.src_mask[:, s]
        if not bool(rows.any()):
            continue
        idx = rows.nonzero().squeeze(1)
        src = torch.stack([batch.src[i][keep[i]] for i in idx.tolist()])
        reduced = Seq2SeqBatch(src, src != PAD, batch.tgt_in[idx], batch.tgt_out[idx], batch.tgt_mask[idx])
        out[idx, :, s] = full[idx] - _target_logprob(model, reduced, None, None)
    return out * _step_mask(batch)


def explain(model: Seq2SeqTransformer, batch: Seq2SeqBatch, method: str, **kwargs) -> torch.Tensor:
    """Source scores ``[B, T, S]`` of ``method`` (one of :data:`SEQ2SEQ_METHODS`)."""
    model.eval()
    if method == "cross_attention":
        return cross_attention(model, batch, **kwargs)
    if method == "cross_attention_mean":
        return cross_attention(model, batch, layer=None, head=None)
    if method == "rollout":
        return rollout(model, batch)
    if method == "norm":
        return norm_based(model, batch, **kwargs)
    if method == "gradient_x_input":
        return gradient_x_input(model, batch)[0]
    if method == "integrated_gradients":
        return integrated_gradients(model, batch, **kwargs)[0]
    if method == "loo":
        return leave_one_out(model, batch)
    raise ValueError(f"unknown seq2seq explanation method {method!r}; choose one of {SEQ2SEQ_METHODS}")
