"""A readable BERT-style Transformer encoder classifier with every attention tensor exposed.

One module serves two models of the study:

* **MiniLM** (all-MiniLM-L6-v2, a 6-layer, 12-head, 384-wide BERT) loaded from
  the offline cache with :meth:`TransformerClassifier.from_pretrained`; its
  logits equal Hugging Face's ``BertForSequenceClassification`` on the same
  weights (tested), but here the inside is observable;
* a **small from-scratch** encoder (same code, a smaller
  :class:`EncoderConfig`) trained on the planted-rationale task.

The stages (post-LayerNorm BERT, Devlin et al. 2019)::

    ids ──embed──> e [B,T,d] ──+ position + type, LN──> x_0
    x_l = LN(x' + FFN(x')),  x' = LN(x_{l-1} + Σ_h A_l^h V_l^h W_O^h + b_O)     (l = 1..L)
    logits = classifier(tanh(pooler(x_L[:, 0])))          # [CLS] is position 0

:class:`EncoderOutput` returns, per layer, the attention probabilities
``A_l [B, heads, T, T]`` (rows are queries, columns keys; each row sums to 1
over the real keys) and the value vectors ``V_l [B, heads, T, d_head]``, kept
in the autograd graph so that gradient-weighted methods (Chefer et al. 2021)
can differentiate with respect to them. ``head_mask [L, heads]`` multiplies each
head's output (1 = keep, 0 = ablate), as in Michel et al. 2019.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from aine_lib.config import ConfigError


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of a :class:`TransformerClassifier` (BERT names in comments)."""

    vocab_size: int
    hidden: int = 384                 # hidden_size
    layers: int = 6                   # num_hidden_layers
    heads: int = 12                   # num_attention_heads
    intermediate: int = 1536          # intermediate_size
    max_positions: int = 512          # max_position_embeddings
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1              # hidden and attention-probability dropout
    n_classes: int = 2
    pad_id: int = 0
    cls_id: int | None = None         # special tokens: never attributed, never erased (None: not used)
    sep_id: int | None = None
    mask_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden", "layers", "heads", "intermediate", "max_positions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ConfigError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {self.n_classes}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def special_ids(self) -> tuple[int, ...]:
        return tuple(i for i in (self.cls_id, self.sep_id) if i is not None)


@dataclass
class EncoderOutput:
    logits: torch.Tensor                       # [B, C]
    attentions: tuple[torch.Tensor, ...]       # L x [B, heads, T, T]
    values: tuple[torch.Tensor, ...]           # L x [B, heads, T, d_head]
    hidden_states: tuple[torch.Tensor, ...]    # L + 1 x [B, T, d] (embeddings output first)
    pooled: torch.Tensor                       # [B, d]


class SelfAttention(nn.Module):
    """Multi-head self-attention with BERT's output projection, residual and LayerNorm."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(cfg.hidden, cfg.hidden)
        self.value = nn.Linear(cfg.hidden, cfg.hidden)
        self.output = nn.Linear(cfg.hidden, cfg.hidden)      # W_O, b_O
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.cfg.heads, self.cfg.head_dim).transpose(1, 2)      # [B, h, T, dh]

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, head_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        # scores and probabilities in float32 even under bfloat16 autocast (models/precision.py)
        scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(self.cfg.head_dim)       # [B, h, T, T]
        scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        mixed = self.dropout(probs).to(v.dtype) @ v                                      # [B, h, T, dh]
        if head_mask is not None:
            mixed = mixed * head_mask.view(1, -1, 1, 1).to(mixed.dtype)
        B, h, T, dh = mixed.shape
        out = self.output(mixed.transpose(1, 2).reshape(B, T, h * dh))
        return self.norm(x + self.dropout(out)), probs, v


class EncoderLayer(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.attention = SelfAttention(cfg)
        self.intermediate = nn.Linear(cfg.hidden, cfg.intermediate)
        self.output = nn.Linear(cfg.intermediate, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.activation = nn.GELU()

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, head_mask: torch.Tensor | None = None):
        x, probs, values = self.attention(x, key_mask, head_mask)
        ffn = self.output(self.activation(self.intermediate(x)))
        return self.norm(x + self.dropout(ffn)), probs, values


def _special_ids(path: Path) -> dict[str, int]:
    """Ids of [CLS], [SEP], [MASK] from the checkpoint's ``vocab.txt`` (one token per line)."""
    vocab_file = path / "vocab.txt"
    if not vocab_file.exists():
        return {}
    index = {tok: i for i, tok in enumerate(vocab_file.read_text(encoding="utf-8").splitlines())}
    return {f"{name}_id": index[tok] for name, tok in (("cls", "[CLS]"), ("sep", "[SEP]"), ("mask", "[MASK]"))
            if tok in index}


class TransformerClassifier(nn.Module):
    """BERT encoder + pooler + linear classifier, with the attention of every layer and head exposed."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden, padding_idx=cfg.pad_id)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden)
        self.embedding_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))
        self.pooler = nn.Linear(cfg.hidden, cfg.hidden)
        self.classifier = nn.Linear(cfg.hidden, cfg.n_classes)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ----- stages ------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings ``[B, T, d]``: the input every gradient-based attribution is taken with respect to."""
        return self.word_embeddings(ids)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, *, embeddings: torch.Tensor | None = None,
                head_mask: torch.Tensor | None = None) -> EncoderOutput:
        """``mask [B, T]`` is True at real tokens (keys that may be attended to); ``embeddings``
        replaces ``embed(ids)``; ``head_mask [layers, heads]`` scales each head's output."""
        if mask.shape != ids.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor shaped like ids {tuple(ids.shape)}, got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        if ids.shape[1] > self.cfg.max_positions:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds max_positions {self.cfg.max_positions}; "
                             "truncate the inputs")
        if head_mask is not None and tuple(head_mask.shape) != (self.cfg.layers, self.cfg.heads):
            raise ValueError(f"head_mask must be [layers, heads] = {(self.cfg.layers, self.cfg.heads)}, "
                             f"got {tuple(head_mask.shape)}")
        if embeddings is None:
            embeddings = self.embed(ids)
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = embeddings + self.position_embeddings(positions)[None] + self.type_embeddings(torch.zeros_like(ids))
        x = self.dropout(self.embedding_norm(x))
        hidden, attentions, values = [x], [], []
        for i, layer in enumerate(self.layers):
            x, probs, v = layer(x, mask, None if head_mask is None else head_mask[i])
            hidden.append(x)
            attentions.append(probs)
            values.append(v)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        logits = self.classifier(self.dropout(pooled))
        return EncoderOutput(logits, tuple(attentions), tuple(values), tuple(hidden), pooled)

    # ----- weights from Hugging Face BERT checkpoints ---------------------------
    @classmethod
    def from_pretrained(cls, path: Path, n_classes: int = 2, dropout: float = 0.1) -> "TransformerClassifier":
        """Load a BERT checkpoint folder (``config.json`` + ``model.safetensors``); the pooler comes
        from the checkpoint when present, the classifier is new (initialised from torch's global RNG)."""
        from safetensors.torch import load_file

        path = Path(path)
        hf = json.loads((path / "config.json").read_text())
        if hf.get("model_type") != "bert":
            raise ValueError(f"{path} holds a {hf.get('model_type')!r} model; only BERT checkpoints are supported")
        cfg = EncoderConfig(vocab_size=hf["vocab_size"], hidden=hf["hidden_size"], layers=hf["num_hidden_layers"],
                            heads=hf["num_attention_heads"], intermediate=hf["intermediate_size"],
                            max_positions=hf["max_position_embeddings"], type_vocab_size=hf["type_vocab_size"],
                            layer_norm_eps=hf["layer_norm_eps"], dropout=dropout, n_classes=n_classes,
                            pad_id=hf.get("pad_token_id", 0), **_special_ids(path))
        model = cls(cfg)
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors weights in {path}; fetch the model with `aine fetch`")
        state = {}
        for f in files:
            state.update(load_file(str(f)))
        model.load_bert_state_dict(state)
        return model

    def load_bert_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy weights named as in Hugging Face ``BertModel`` / ``BertForSequenceClassification``.

        Every encoder weight must be present (a missing one raises); the pooler
        and classifier are copied when present.
        """
        state = {k.removeprefix("bert."): v for k, v in state.items()}
        mapping = {
            "word_embeddings.weight": "embeddings.word_embeddings.weight",
            "position_embeddings.weight": "embeddings.position_embeddings.weight",
            "type_embeddings.weight": "embeddings.token_type_embeddings.weight",
            "embedding_norm.weight": "embeddings.LayerNorm.weight",
            "embedding_norm.bias": "embeddings.LayerNorm.bias",
        }
        for i in range(self.cfg.layers):
            hf = f"encoder.layer.{i}."
            ours = f"layers.{i}."
            for p in ("weight", "bias"):
                mapping |= {
                    f"{ours}attention.query.{p}": f"{hf}attention.self.query.{p}",
                    f"{ours}attention.key.{p}": f"{hf}attention.self.key.{p}",
                    f"{ours}attention.value.{p}": f"{hf}attention.self.value.{p}",
                    f"{ours}attention.output.{p}": f"{hf}attention.output.dense.{p}",
                    f"{ours}attention.norm.{p}": f"{hf}attention.output.LayerNorm.{p}",
                    f"{ours}intermediate.{p}": f"{hf}intermediate.dense.{p}",
                    f"{ours}output.{p}": f"{hf}output.dense.{p}",
                    f"{ours}norm.{p}": f"{hf}output.LayerNorm.{p}",
                }
        optional = {f"pooler.{p}": f"pooler.dense.{p}" for p in ("weight", "bias")}
        optional |= {f"classifier.{p}": f"classifier.{p}" for p in ("weight", "bias")}
        missing = [hf for hf in mapping.values() if hf not in state]
        if missing:
            raise ValueError(f"the checkpoint lacks {len(missing)} BERT weights, e.g. {missing[:3]}; "
                             "is it a BERT model with this config?")
        own = self.state_dict()
        with torch.no_grad():
            for ours, hf in (mapping | {k: v for k, v in optional.items() if v in state}).items():
                if own[ours].shape != state[hf].shape:
                    raise ValueError(f"{hf} has shape {tuple(state[hf].shape)}, expected {tuple(own[ours].shape)}")
                own[ours].copy_(state[hf])

    def describe(self) -> dict:
        return asdict(self.cfg)
