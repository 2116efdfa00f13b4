"""Attention classifiers of Jain & Wallace 2019: embed -> encode -> attend -> decode.

One readable module built from :class:`RNNClassifierConfig`. Each stage is a
named method, so interventions can replace any of them::

    ids, mask ──embed──> e [B,T,E] ──encode──> h [B,T,H] ──attend──> a [B,T]
                                                   └──────── decode(h, a) ──> logits [B,C]

* **Encoders** (``h_t``, all of width ``H = 2 * hidden_dim``):
  ``lstm``: a bidirectional LSTM (forward and within-length-reversed passes;
  padding never reaches a real position); ``cnn``: one 'same'-padded Conv1d + ReLU per kernel width,
  concatenated, with padding embeddings zeroed first; ``average``:
  ``ReLU(Linear(e_t))``, no context at all.
* **Attention** (no query; classification): ``additive``:
  ``score_t = v^T tanh(W h_t + b)``; ``dot``: ``score_t = h_t . q / sqrt(H)``
  with a learned ``q``. A masked softmax gives padding exactly 0 weight.
  ``uniform_attention=True`` fixes attention at ``mask / n_real`` (the
  Wiegreffe & Pinter baseline) and creates no attention parameters.
* **Decoder**: ``Linear(H -> n_classes)`` on the context ``c = sum_t a_t h_t``.

Hidden states are exactly 0 at padding for every encoder. Padding id is 0
and padding is on the right (``mask`` is True at real tokens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from aine_lib.config import ConfigError

ENCODERS = ("lstm", "cnn", "average")

#: Bumped whenever a model computes something different for the same config and
#: weights (or its state dict changes); it is part of every trained model's cache key.
MODEL_CODE_VERSION = 2   # 2: BiLSTM as two padded one-directional LSTMs (was packed nn.LSTM)
ATTENTIONS = ("additive", "dot")


@dataclass(frozen=True)
class RNNClassifierConfig:
    """Architecture of one :class:`AttentionClassifier`."""

    encoder: Literal["lstm", "cnn", "average"]
    attention: Literal["additive", "dot"]
    vocab_size: int
    embed_dim: int = 50          # GloVe 6B 50-d
    hidden_dim: int = 128        # per direction for the BiLSTM (H = 256); CNN/average give H = 2*hidden_dim too
    cnn_kernels: tuple[int, ...] = (1, 3, 5, 7)
    n_classes: int = 2
    uniform_attention: bool = False   # attention frozen to uniform over the real tokens
    dropout: float = 0.0              # on the context vector, before the decoder

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.vocab_size < 2:
            raise ConfigError(f"vocab_size must be >= 2 (<pad> and <unk>), got {self.vocab_size}")
        for name in ("embed_dim", "hidden_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {self.n_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.cnn_kernels or any(k < 1 for k in self.cnn_kernels):
            raise ConfigError(f"cnn_kernels must be a non-empty list of positive widths, got {self.cnn_kernels}")
        if self.encoder == "cnn" and (2 * self.hidden_dim) % len(self.cnn_kernels):
            raise ConfigError(
                f"the cnn encoder splits 2*hidden_dim = {2 * self.hidden_dim} channels evenly over "
                f"{len(self.cnn_kernels)} kernel widths; choose hidden_dim so that this divides"
            )

    @property
    def output_dim(self) -> int:
        """Width ``H`` of the encoder states (the same for every encoder)."""
        return 2 * self.hidden_dim


@dataclass
class ClassifierOutput:
    """Everything one forward pass computes; output distributions are ``softmax(logits, -1)``."""

    logits: torch.Tensor      # [B, C]
    attention: torch.Tensor   # [B, T]; each row sums to 1 over real tokens, exactly 0 at padding
    hidden: torch.Tensor      # [B, T, H] encoder states (exactly 0 at padding)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where ``mask`` is True; exactly 0 elsewhere."""
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def uniform_attention(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``mask / n_real``: equal weight on every real token."""
    weights = mask.to(dtype)
    return weights / weights.sum(-1, keepdim=True)


class BiLSTMEncoder(nn.Module):
    """Bidirectional LSTM as two one-directional LSTMs: padding never affects a real position.

    The forward LSTM reads the right-padded batch as it is: a real position only
    sees the tokens before it. The backward LSTM reads each sequence reversed
    *within its own length* (padding stays on the right), and its states are
    put back in the original order. This is exactly a packed bidirectional
    LSTM (tested against ``nn.LSTM(bidirectional=True)`` on packed input), but
    runs on the padded fast path (oneDNN on CPU, cuDNN on GPU), about 9x faster
    on CPU for 20 Newsgroups-length documents (see ``benchmarks/lstm.py``).
    """

    def __init__(self, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.forward_lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.backward_lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)

    @staticmethod
    def reverse_within_length(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reverse each row's real positions ``[0, n)``; padding positions stay in place (an involution)."""
        T = x.shape[1]
        positions = torch.arange(T, device=x.device)
        lengths = mask.sum(-1, keepdim=True)
        index = torch.where(positions < lengths, lengths - 1 - positions, positions)   # [B, T]
        return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(-1).to(embeddings.dtype)
        forward_states, _ = self.forward_lstm(embeddings)
        reversed_states, _ = self.backward_lstm(self.reverse_within_length(embeddings, mask))
        backward_states = self.reverse_within_length(reversed_states, mask)
        return torch.cat([forward_states, backward_states], dim=-1) * keep


class CNNEncoder(nn.Module):
    """One 'same'-padded Conv1d + ReLU per kernel width, concatenated along channels."""

    def __init__(self, embed_dim: int, output_dim: int, kernels: tuple[int, ...]):
        super().__init__()
        channels = output_dim // len(kernels)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k, padding="same") for k in kernels)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Zeroed padding looks exactly like the convolution's own zero padding,
        # so a real position sees the same inputs whatever follows the sentence.
        x = (embeddings * mask.unsqueeze(-1).to(embeddings.dtype)).transpose(1, 2)   # [B, E, T]
        return torch.cat([torch.relu(conv(x)) for conv in self.convs], dim=1).transpose(1, 2)


class AverageEncoder(nn.Module):
    """Projected embeddings, ``ReLU(Linear(e_t))``: no information flows between positions."""

    def __init__(self, embed_dim: int, output_dim: int):
        super().__init__()
        self.projection = nn.Linear(embed_dim, output_dim)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.projection(embeddings))


class AdditiveAttention(nn.Module):
    """``score_t = v^T tanh(W h_t + b)`` (Bahdanau-style, no query); W maps H -> H/2 as in J&W."""

    def __init__(self, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.proj = nn.Linear(hidden_dim, attention_dim)
        self.v = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.v(torch.tanh(self.proj(hidden))).squeeze(-1)


class ScaledDotAttention(nn.Module):
    """``score_t = h_t . q / sqrt(H)`` with a learned vector ``q``."""

    def __init__(self, hidden_dim: int):
        super().__init__()
        self.query = nn.Linear(hidden_dim, 1, bias=False)
        self.scale = 1.0 / math.sqrt(hidden_dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.query(hidden).squeeze(-1) * self.scale


class AttentionClassifier(nn.Module):
    """A text classifier whose attention distribution is a first-class output.

    >>> model = AttentionClassifier(RNNClassifierConfig("lstm", "additive", vocab_size=len(vocab)), glove)
    >>> out = model(batch.ids, batch.mask)          # ClassifierOutput(logits, attention, hidden)
    """

    def __init__(self, cfg: RNNClassifierConfig, embeddings: np.ndarray | None = None):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0)
        if embeddings is not None:
            matrix = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
            if tuple(matrix.shape) != (cfg.vocab_size, cfg.embed_dim):
                raise ValueError(
                    f"embedding matrix has shape {tuple(matrix.shape)} but the config asks for "
                    f"(vocab_size, embed_dim) = ({cfg.vocab_size}, {cfg.embed_dim}); build it from the "
                    "same vocabulary and set embed_dim to its width"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(matrix)

        H = cfg.output_dim
        if cfg.encoder == "lstm":
            self.encoder: nn.Module = BiLSTMEncoder(cfg.embed_dim, cfg.hidden_dim)
        elif cfg.encoder == "cnn":
            self.encoder = CNNEncoder(cfg.embed_dim, H, cfg.cnn_kernels)
        else:
            self.encoder = AverageEncoder(cfg.embed_dim, H)

        self.scorer: nn.Module | None = None
        if not cfg.uniform_attention:
            self.scorer = AdditiveAttention(H, H // 2) if cfg.attention == "additive" else ScaledDotAttention(H)

        self.dropout = nn.Dropout(cfg.dropout)
        self.decoder = nn.Linear(H, cfg.n_classes)

    @property
    def output_dim(self) -> int:
        return self.cfg.output_dim

    # ----- the four stages --------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, T]`` -> embeddings ``[B, T, E]``."""
        return self.embedding(ids)

    def encode(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, T, E]`` -> states ``[B, T, H]``, exactly 0 at padding."""
        _check_mask(mask, embeddings.shape[:2])
        hidden = self.encoder(embeddings, mask)
        return hidden * mask.unsqueeze(-1).to(hidden.dtype)

    def attend(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """States ``[B, T, H]`` -> attention ``[B, T]`` (rows sum to 1, exactly 0 at padding)."""
        if self.scorer is None:
            return uniform_attention(mask, hidden.dtype)
        return masked_softmax(self.scorer(hidden), mask)

    def decode(self, hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from the context ``sum_t a_t h_t``."""
        context = torch.einsum("bt,bth->bh", attention, hidden)
        return self.decoder(self.dropout(context))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, *, embeddings: torch.Tensor | None = None,
                attention: torch.Tensor | None = None, detach_attention: bool = False) -> ClassifierOutput:
        """Run all stages; ``embeddings`` replaces ``embed(ids)``, ``attention`` replaces ``attend(...)``.

        ``detach_attention`` computes the attention but treats it as a constant
        for gradients (Jain & Wallace's gradient importance).
        """
        if embeddings is None:
            embeddings = self.embed(ids)
        elif embeddings.shape[:2] != ids.shape:
            raise ValueError(f"embeddings {tuple(embeddings.shape)} do not match ids {tuple(ids.shape)}")
        hidden = self.encode(embeddings, mask)
        if attention is None:
            attention = self.attend(hidden, mask)
            if detach_attention:
                attention = attention.detach()
        elif attention.shape != mask.shape:
            raise ValueError(f"attention {tuple(attention.shape)} must have the mask's shape {tuple(mask.shape)}")
        return ClassifierOutput(logits=self.decode(hidden, attention), attention=attention, hidden=hidden)


def _check_mask(mask: torch.Tensor, shape: torch.Size) -> None:
    if mask.dtype != torch.bool or mask.shape != shape:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(shape)}, got {mask.dtype} {tuple(mask.shape)}")
    if not bool(mask.any(-1).all()):
        raise ValueError("every row needs at least one real token (mask all False in some row); "
                         "drop empty examples before batching")
