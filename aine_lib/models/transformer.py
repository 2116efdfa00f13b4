"""A readable encoder-decoder Transformer (Vaswani et al. 2017) with every attention tensor exposed.

In the spirit of nanoGPT's ``model.py``: one file, one config dataclass, no
framework. The paper's "base" design at a small size:

* sinusoidal positions added to ``sqrt(d_model)``-scaled token embeddings;
* post-LayerNorm residual blocks (``x = LN(x + Sublayer(x))``) as in the paper;
* encoder layers: self-attention + feed-forward (ReLU);
  decoder layers: causal self-attention + cross-attention over the encoder
  output + feed-forward;
* a linear output layer tied to the target embeddings.

Every forward pass returns the attention probabilities by name
(:class:`Seq2SeqOutput.attentions`): ``"encoder_self"``, ``"decoder_self"``
and ``"cross"``, each a tuple with one ``[B, heads, T_query, T_key]`` tensor
per layer, kept in the autograd graph (gradient-weighted methods need that).
Decoding: :meth:`Seq2SeqTransformer.greedy` and :meth:`Seq2SeqTransformer.beam_search`
(beam 1 is exactly greedy; tested), by default one new token per step through a key/value cache
(:mod:`aine_lib.models.decoding`); ``use_cache=False`` re-decodes the whole prefix at every step instead
(same tokens; tested).

Token ids: 0 = padding, 1 = beginning of sentence, 2 = end of sentence, in both
vocabularies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aine_lib.config import ConfigError
from aine_lib.models.decoding import KeyValueCache, decoder_layer_step

PAD, BOS, EOS = 0, 1, 2


@dataclass(frozen=True)
class Seq2SeqConfig:
    src_vocab: int
    tgt_vocab: int
    d_model: int = 128
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    d_ff: int = 512
    dropout: float = 0.1
    max_len: int = 256
    cross_normaliser: str = "softmax"      # or "entmax15" (Peters et al. 2019): sparse cross-attention

    def __post_init__(self) -> None:
        if self.cross_normaliser not in ("softmax", "entmax15"):
            raise ConfigError(f"cross_normaliser must be 'softmax' or 'entmax15', got {self.cross_normaliser!r}")
        for name in ("src_vocab", "tgt_vocab", "d_model", "heads", "encoder_layers", "decoder_layers", "d_ff",
                     "max_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.src_vocab < 3 or self.tgt_vocab < 3:
            raise ConfigError("vocabularies need at least the 3 special ids (pad, bos, eos)")
        if self.d_model % self.heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class Seq2SeqOutput:
    logits: torch.Tensor                                  # [B, T_tgt, V_tgt]
    attentions: dict[str, tuple[torch.Tensor, ...]]       # name -> per layer [B, heads, Tq, Tk]
    values: dict[str, tuple[torch.Tensor, ...]]           # name -> per layer [B, heads, Tk, d_head]
    memory: torch.Tensor                                  # [B, T_src, d] encoder output


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """``[length, d_model]``: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div[: d_model // 2])
    return pe


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over ``heads`` heads; returns output, probabilities and values."""

    def __init__(self, cfg: Seq2SeqConfig, normaliser: str = "softmax"):
        super().__init__()
        self.normaliser = normaliser
        self.heads, self.d_head = cfg.heads, cfg.d_model // cfg.heads
        self.query = nn.Linear(cfg.d_model, cfg.d_model)
        self.key = nn.Linear(cfg.d_model, cfg.d_model)
        self.value = nn.Linear(cfg.d_model, cfg.d_model)
        self.output = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.d_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor, causal: bool = False,
                head_mask: torch.Tensor | None = None, transform=None):
        """``transform(probs) -> probs`` replaces the attention distribution (interventions); it must keep
        each row a distribution over the allowed keys."""
        q = self.split_heads(self.query(x))
        k, v = self.split_heads(self.key(memory)), self.split_heads(self.value(memory))
        allowed = key_mask[:, None, None, :]
        if causal:
            Tq, Tk = q.shape[-2], k.shape[-2]
            allowed = allowed & torch.ones(Tq, Tk, dtype=torch.bool, device=x.device).tril()
        out, probs = self.attend(q, k, v, allowed, head_mask, transform)
        return out, probs, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None,
               head_mask: torch.Tensor | None = None, transform=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Split-head queries ``[B, h, Tq, d]`` over keys and values ``[B or 1, h, Tk, d]`` (a batch of 1 is
        broadcast), ``allowed`` broadcastable to ``[B, h, Tq, Tk]`` or None (every key); -> (output
        ``[B, Tq, d_model]``, probabilities ``[B, h, Tq, Tk]``). The key/value cache calls it with one query."""
        # scores and probabilities in float32 even under bfloat16 autocast (models/precision.py)
        scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(self.d_head)           # [B, h, Tq, Tk]
        if allowed is not None:
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        if self.normaliser == "entmax15":
            from entmax import entmax15

            probs = entmax15(scores, dim=-1)
        else:
            probs = torch.softmax(scores, dim=-1)
        if transform is not None:
            probs = transform(probs)
        mixed = self.dropout(probs).to(v.dtype) @ v
        if head_mask is not None:
            mixed = mixed * head_mask.view(1, -1, 1, 1).to(mixed.dtype)
        B, h, T, d = mixed.shape
        return self.output(mixed.transpose(1, 2).reshape(B, T, h * d)), probs


class FeedForward(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.ReLU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.d_ff, cfg.d_model))

    def forward(self, x):
        return self.net(x)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.self_attention = MultiHeadAttention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, mask, head_mask=None):
        a, probs, v = self.self_attention(x, x, mask, head_mask=head_mask)
        x = self.norm1(x + self.dropout(a))
        return self.norm2(x + self.dropout(self.feed_forward(x))), probs, v


class DecoderLayer(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.self_attention = MultiHeadAttention(cfg)
        self.cross_attention = MultiHeadAttention(cfg, normaliser=cfg.cross_normaliser)
        self.feed_forward = FeedForward(cfg)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, y, tgt_mask, memory, src_mask, self_head_mask=None, cross_head_mask=None,
                cross_transform=None):
        a, self_probs, self_v = self.self_attention(y, y, tgt_mask, causal=True, head_mask=self_head_mask)
        y = self.norm1(y + self.dropout(a))
        c, cross_probs, cross_v = self.cross_attention(y, memory, src_mask, head_mask=cross_head_mask,
                                                       transform=cross_transform)
        y = self.norm2(y + self.dropout(c))
        return self.norm3(y + self.dropout(self.feed_forward(y))), (self_probs, self_v), (cross_probs, cross_v)


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer; ``forward`` is teacher-forced, ``greedy``/``beam_search`` generate."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        self.src_embedding = nn.Embedding(cfg.src_vocab, cfg.d_model, padding_idx=PAD)
        self.tgt_embedding = nn.Embedding(cfg.tgt_vocab, cfg.d_model, padding_idx=PAD)
        self.register_buffer("positions", sinusoidal_positions(cfg.max_len, cfg.d_model), persistent=False)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.dropout = nn.Dropout(cfg.dropout)
        self.generator = nn.Linear(cfg.d_model, cfg.tgt_vocab, bias=False)
        for p in self.parameters():
            if p.ndim > 1:
                nn.init.xavier_uniform_(p)
        with torch.no_grad():
            self.src_embedding.weight[PAD].zero_()
            self.tgt_embedding.weight[PAD].zero_()
        self.generator.weight = self.tgt_embedding.weight          # tied, as in the paper

    # ----- stages -----------------------------------------------------------------
    def embed_source(self, ids: torch.Tensor) -> torch.Tensor:
        return self.src_embedding(ids)

    def embed_target(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tgt_embedding(ids)

    def _add_positions(self, e: torch.Tensor) -> torch.Tensor:
        if e.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {e.shape[1]} exceeds max_len {self.cfg.max_len}; truncate it")
        return self.dropout(e * math.sqrt(self.cfg.d_model) + self.positions[: e.shape[1]])

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor, src_embeddings: torch.Tensor | None = None,
               head_mask: torch.Tensor | None = None):
        x = self._add_positions(self.embed_source(src) if src_embeddings is None else src_embeddings)
        probs, values = [], []
        for i, layer in enumerate(self.encoder):
            x, p, v = layer(x, src_mask, None if head_mask is None else head_mask[i])
            probs.append(p)
            values.append(v)
        return x, tuple(probs), tuple(values)

    def decode(self, tgt_in: torch.Tensor, tgt_mask: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
               tgt_embeddings: torch.Tensor | None = None, self_head_mask: torch.Tensor | None = None,
               cross_head_mask: torch.Tensor | None = None, cross_transform=None):
        """``cross_transform(layer, probs) -> probs`` replaces each decoder layer's cross-attention."""
        y = self._add_positions(self.embed_target(tgt_in) if tgt_embeddings is None else tgt_embeddings)
        self_att, cross_att, self_v, cross_v = [], [], [], []
        for i, layer in enumerate(self.decoder):
            transform = None if cross_transform is None else (lambda p, i=i: cross_transform(i, p))
            y, (sp, sv), (cp, cv) = layer(y, tgt_mask, memory, src_mask,
                                          None if self_head_mask is None else self_head_mask[i],
                                          None if cross_head_mask is None else cross_head_mask[i], transform)
            self_att.append(sp)
            cross_att.append(cp)
            self_v.append(sv)
            cross_v.append(cv)
        return self.generator(y), tuple(self_att), tuple(cross_att), tuple(self_v), tuple(cross_v)

    def decode_step(self, tokens: torch.Tensor, cache: KeyValueCache) -> torch.Tensor:
        """Logits ``[B, V]`` for the next token after ``tokens`` ``[B]``, the newest target token at position
        ``cache.length``; the decoder runs on that position only and appends its keys/values to ``cache``.
        Equal to ``decode(prefix, ...)[0][:, -1]`` (up to float rounding)."""
        if self.training and self.cfg.dropout > 0:
            raise ValueError("the key/value cache decodes without dropout: call model.eval() before generating, "
                             "or pass use_cache=False")
        position = cache.length
        if position >= self.cfg.max_len:
            raise ValueError(f"sequence length {position + 1} exceeds max_len {self.cfg.max_len}; truncate it")
        y = self.dropout(self.embed_target(tokens[:, None]) * math.sqrt(self.cfg.d_model)
                         + self.positions[position:position + 1])
        for i, layer in enumerate(self.decoder):
            y = decoder_layer_step(layer, y, cache, i)
        cache.length += 1
        return self.generator(y[:, 0])

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor, tgt_mask: torch.Tensor, *,
                src_embeddings: torch.Tensor | None = None, tgt_embeddings: torch.Tensor | None = None,
                head_masks: dict[str, torch.Tensor] | None = None, cross_transform=None) -> Seq2SeqOutput:
        """Teacher-forced pass: ``tgt_in`` starts with BOS; ``logits[:, t]`` predicts target token ``t``.

        ``head_masks`` may hold ``"encoder_self"``, ``"decoder_self"``, ``"cross"``: ``[layers, heads]``.
        ``cross_transform(layer, probs)`` replaces cross-attention (permutation, adversarial, erasure).
        """
        for name, mask, ids in (("src_mask", src_mask, src), ("tgt_mask", tgt_mask, tgt_in)):
            if mask.dtype != torch.bool or mask.shape != ids.shape:
                raise ValueError(f"{name} must be a bool tensor shaped like its ids {tuple(ids.shape)}")
        hm = head_masks or {}
        memory, enc_p, enc_v = self.encode(src, src_mask, src_embeddings, hm.get("encoder_self"))
        logits, dec_p, cross_p, dec_v, cross_v = self.decode(tgt_in, tgt_mask, memory, src_mask, tgt_embeddings,
                                                             hm.get("decoder_self"), hm.get("cross"),
                                                             cross_transform)
        return Seq2SeqOutput(logits, {"encoder_self": enc_p, "decoder_self": dec_p, "cross": cross_p},
                             {"encoder_self": enc_v, "decoder_self": dec_v, "cross": cross_v}, memory)

    # ----- generation -------------------------------------------------------------------
    @torch.no_grad()
    def greedy(self, src: torch.Tensor, src_mask: torch.Tensor, max_len: int = 64, use_cache: bool = True
               ) -> list[list[int]]:
        """Greedy decoding; returns each row's tokens without BOS, up to and excluding EOS.

        ``use_cache=False``: re-decode the whole prefix at every step (same tokens, slower)."""
        memory, _, _ = self.encode(src, src_mask)
        B = src.shape[0]
        out = torch.full((B, 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        cache = KeyValueCache.for_memory(self.decoder, memory, src_mask) if use_cache else None
        for _ in range(max_len):
            if cache is None:
                logits = self.decode(out, torch.ones_like(out, dtype=torch.bool), memory, src_mask)[0][:, -1]
            else:
                logits = self.decode_step(out[:, -1], cache)
            nxt = logits.argmax(-1).masked_fill(done, PAD)
            out = torch.cat([out, nxt[:, None]], 1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        return [_strip(row) for row in out[:, 1:].tolist()]

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, src_mask: torch.Tensor, beam: int = 4, max_len: int = 64,
                    length_penalty: float = 0.0, use_cache: bool = True) -> list[list[int]]:
        """Beam search per example; scores are summed log-probabilities divided by ``length ** length_penalty``.

        With ``beam=1`` this is greedy decoding (same tokens). ``use_cache=False``: re-decode every
        hypothesis's whole prefix at every step (same tokens, slower).
        """
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        results = []
        for b in range(src.shape[0]):
            memory, _, _ = self.encode(src[b:b + 1], src_mask[b:b + 1])
            hyps = [([BOS], 0.0)]
            finished: list[tuple[list[int], float]] = []
            cache = KeyValueCache.for_memory(self.decoder, memory, src_mask[b:b + 1]) if use_cache else None
            for _ in range(max_len):
                if cache is None:
                    seqs = torch.tensor([h for h, _ in hyps], device=src.device)
                    mem = memory.expand(len(hyps), -1, -1)
                    logits = self.decode(seqs, torch.ones_like(seqs, dtype=torch.bool), mem,
                                         src_mask[b:b + 1].expand(len(hyps), -1))[0][:, -1]
                else:
                    logits = self.decode_step(torch.tensor([h[-1] for h, _ in hyps], device=src.device), cache)
                logp = torch.log_softmax(logits, -1)
                scores = torch.tensor([s for _, s in hyps], device=src.device)[:, None] + logp
                top = scores.view(-1).topk(min(beam, scores.numel()))
                V = logp.shape[-1]
                new, parents = [], []
                for score, idx in zip(top.values.tolist(), top.indices.tolist()):
                    h, tok = hyps[idx // V][0], idx % V
                    if tok == EOS:
                        finished.append((h[1:], score / max(1, len(h)) ** length_penalty))
                    else:
                        new.append((h + [tok], score))
                        parents.append(idx // V)
                if len(finished) >= beam or not new:
                    break
                hyps = new
                if cache is not None:
                    cache.reorder(torch.tensor(parents, device=src.device))
            if not finished:
                finished = [(h[1:], s / max(1, len(h) - 1) ** length_penalty) for h, s in hyps]
            results.append(max(finished, key=lambda x: x[1])[0])
        return results


def _strip(row: list[int]) -> list[int]:
    out = []
    for t in row:
        if t in (EOS, PAD):
            break
        out.append(t)
    return out
