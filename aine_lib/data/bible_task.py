"""The Bible English -> Spanish translation task: BPE subwords and statistical reference alignments.

Built from :func:`aine_lib.data.bible.load_bible_pairs` (World English Bible
and Reina-Valera 1909 verse pairs) in four steps:

1. **Words.** Each verse is split into words and punctuation
   (``\\w+|[^\\w\\s]``, case kept).
2. **Splits.** Verses are shuffled with ``split_seed``; dev and test take the
   first ``n_dev`` / ``n_test`` verses, train the next ``n_train`` (all the
   rest when null). Pairs longer than ``max_subwords`` pieces on either side
   are then dropped from every split (so the splits end up a little smaller).
   A random verse split is the usual setting for this corpus; it lets a
   test verse share a parallel passage (e.g. the synoptic gospels) with a
   training verse, which flatters BLEU a little but does not bear on the
   alignment questions.
3. **Subwords.** One joint BPE model (``tokenizers``, continuation pieces
   marked ``##``) is trained on the *training* verses of both languages with
   ``vocab_size`` merges' worth of symbols; each word maps to one or more
   pieces and the word index of every piece is kept.
4. **Reference alignments.** ``eflomal`` (Östling & Tiedemann 2016; built by
   pip from its sdist with gcc and make) aligns the word sequences of all
   splits together (unsupervised, so aligning the test side is legitimate
   and standard) in both directions. The *intersection* of the two
   directions gives the sure links ``S``, their *union* the possible links
   ``P`` (the usual way to read a symmetrised statistical alignment as
   gold). They are the reference for :mod:`aine_lib.metrics.alignment` at
   word level, and are projected to subwords (every piece of a target word
   linked to every piece of its source word) for the subword-level uses:
   decay curves and the alignment-supervised variant.

eflomal seeds its sampler from ``/dev/urandom``, so two fresh runs give
slightly different references; the whole task is therefore built once and
kept in the parameter-keyed :class:`~aine_lib.cache.ResultCache` (namespace
``bible_task``), and everything downstream reads that one copy.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from aine_lib.data.transduction import TransductionExample

WORD = re.compile(r"\w+|[^\w\s]")
UNK_PIECE = "[UNK]"
CONTINUATION = "##"


def words(text: str) -> list[str]:
    return WORD.findall(text)


def train_bpe(sentences: Sequence[Sequence[str]], vocab_size: int):
    """A joint BPE ``tokenizers.Tokenizer`` trained on pre-split word sequences."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK_PIECE, continuing_subword_prefix=CONTINUATION))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[UNK_PIECE],
                                  continuing_subword_prefix=CONTINUATION, show_progress=False)
    tok.train_from_iterator((" ".join(s) for s in sentences), trainer)
    return tok


def to_pieces(tokenizer, sentence: Sequence[str]) -> tuple[list[str], list[int]]:
    """(subword pieces, the word index of each piece)."""
    enc = tokenizer.encode(list(sentence), is_pretokenized=True)
    return list(enc.tokens), [int(w) for w in enc.word_ids]


def detokenize(pieces: Sequence[str]) -> str:
    """Pieces back to space-separated words (``##`` pieces glued to the word before them)."""
    out: list[str] = []
    for p in pieces:
        if p.startswith(CONTINUATION) and out:
            out[-1] += p[len(CONTINUATION):]
        else:
            out.append(p[len(CONTINUATION):] if p.startswith(CONTINUATION) else p)
    return " ".join(out)


def _read_links(path: Path, n: int) -> list[set[tuple[int, int]]]:
    """Pharaoh ``i-j`` lines (source i, target j) -> per sentence ``{(target, source)}``."""
    lines = path.read_text().split("\n")[:n]
    out = []
    for line in lines:
        links = set()
        for item in line.split():
            s, t = item.split("-")
            links.add((int(t), int(s)))
        out.append(links)
    out += [set() for _ in range(n - len(out))]
    return out


def eflomal_align(source: Sequence[Sequence[str]], target: Sequence[Sequence[str]]
                  ) -> tuple[list[set[tuple[int, int]]], list[set[tuple[int, int]]]]:
    """(sure = intersection, possible = union) of eflomal's forward and reverse word alignments,
    as ``{(target word, source word)}`` per sentence pair."""
    try:
        import eflomal
    except ImportError as err:                                   # pragma: no cover - depends on the install
        raise ImportError("the Bible task needs eflomal for its reference alignments: pip install eflomal==2.0.0 "
                          "(built from the sdist; needs gcc and make), or `make install`") from err
    if len(source) != len(target):
        raise ValueError(f"source ({len(source)}) and target ({len(target)}) need one sentence each per pair")
    with tempfile.TemporaryDirectory() as tmp:
        fwd, rev = Path(tmp) / "fwd", Path(tmp) / "rev"
        eflomal.Aligner().align([" ".join(s) + "\n" for s in source], [" ".join(t) + "\n" for t in target],
                                links_filename_fwd=str(fwd), links_filename_rev=str(rev), quiet=True)
        forward, reverse = _read_links(fwd, len(source)), _read_links(rev, len(source))
    return [f & r for f, r in zip(forward, reverse)], [f | r for f, r in zip(forward, reverse)]


def project_links(word_links: set[tuple[int, int]], source_word_ids: Sequence[int],
                  target_word_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Word links -> subword links: every piece of the target word to every piece of the source word."""
    src_pieces: dict[int, list[int]] = {}
    for i, w in enumerate(source_word_ids):
        src_pieces.setdefault(w, []).append(i)
    out = []
    for t, w in enumerate(target_word_ids):
        for tw, sw in word_links:
            if tw == w:
                out += [(t, s) for s in src_pieces.get(sw, [])]
    return sorted(set(out))


def pool_to_words(scores: np.ndarray, source_word_ids: Sequence[int], target_word_ids: Sequence[int]) -> np.ndarray:
    """A ``[T_pieces, S_pieces]`` score matrix -> ``[T_words, S_words]``: pieces of a source word are
    summed (attention mass over a word is the sum over its pieces), pieces of a target word averaged."""
    scores = np.asarray(scores, dtype=float)
    tw, sw = np.asarray(target_word_ids), np.asarray(source_word_ids)
    if scores.shape != (len(tw), len(sw)):
        raise ValueError(f"scores {scores.shape} do not match {len(tw)} target and {len(sw)} source pieces")
    n_t, n_s = int(tw.max()) + 1, int(sw.max()) + 1
    cols = np.zeros((scores.shape[0], n_s))
    np.add.at(cols.T, sw, scores.T)
    out = np.zeros((n_t, n_s))
    np.add.at(out, tw, cols)
    return out / np.bincount(tw, minlength=n_t)[:, None]


def build_bible_task(pairs: pd.DataFrame, *, n_train: int | None, n_dev: int, n_test: int, max_subwords: int,
                     vocab_size: int, split_seed: int) -> dict[str, list[TransductionExample]]:
    """Train / dev / test :class:`TransductionExample` lists (English source, Spanish target, pieces), with
    subword-level sure links in ``alignment`` and word-level references in the word fields."""
    if n_dev + n_test >= len(pairs):
        raise ValueError(f"seq2seq.bible.n_dev + n_test ({n_dev + n_test}) must leave training verses out of "
                         f"{len(pairs)}")
    order = np.random.default_rng(split_seed).permutation(len(pairs))
    en = [words(x) for x in pairs["en"]]
    es = [words(x) for x in pairs["es"]]
    train = order[n_dev + n_test:]
    index = {"dev": order[:n_dev], "test": order[n_dev:n_dev + n_test],
             "train": train if n_train is None else train[:n_train]}
    tokenizer = train_bpe([en[i] for i in index["train"]] + [es[i] for i in index["train"]], vocab_size)
    pieces = {i: (to_pieces(tokenizer, en[i]), to_pieces(tokenizer, es[i])) for v in index.values() for i in v}
    keep = {k: [i for i in v if 0 < len(pieces[i][0][0]) <= max_subwords and 0 < len(pieces[i][1][0]) <= max_subwords]
            for k, v in index.items()}
    every = keep["train"] + keep["dev"] + keep["test"]
    sure, possible = eflomal_align([en[i] for i in every], [es[i] for i in every])
    links = {i: (s, p) for i, s, p in zip(every, sure, possible)}
    splits = {}
    for k in ("train", "dev", "test"):
        examples = []
        for i in keep[k]:
            (src, src_w), (tgt, tgt_w) = pieces[i]
            s, p = links[i]
            examples.append(TransductionExample(
                src, tgt, project_links(s, src_w, tgt_w), source_word_ids=tuple(src_w),
                target_word_ids=tuple(tgt_w), word_sure=frozenset(s), word_possible=frozenset(p),
                source_text=" ".join(en[i]), target_text=" ".join(es[i])))
        splits[k] = examples
    return splits


def pairs_fingerprint(pairs: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(pairs, index=False).values.tobytes()).hexdigest()[:20]
