"""The Bible translation task: subwords round-trip, word links project to pieces and back, eflomal finds a
known alignment, and the splits are disjoint, length-capped and built from training verses only."""

import numpy as np
import pandas as pd
import pytest

from aine_lib.data.bible_task import (build_bible_task, detokenize, eflomal_align, pool_to_words, project_links,
                                      to_pieces, train_bpe, words)
from aine_lib.metrics.alignment import alignment_from_scores, corpus_aer


def _parallel_corpus(n: int, seed: int = 0) -> tuple[list[list[str]], list[list[str]], list[set]]:
    """A toy language pair with a one-to-one lexicon and adjective-noun swap, and its true word links."""
    rng = np.random.default_rng(seed)
    nouns = [f"house{i}" for i in range(15)]
    adjectives = [f"red{i}" for i in range(10)]
    other = [f"walks{i}" for i in range(20)]
    lexicon = {w: f"casa{w[5:]}" for w in nouns} | {w: f"roja{w[3:]}" for w in adjectives} | \
              {w: f"anda{w[5:]}" for w in other}
    src, tgt, gold = [], [], []
    for _ in range(n):
        s = [str(w) for w in rng.choice(nouns + adjectives + other, size=int(rng.integers(4, 10)))]
        order, i = [], 0
        while i < len(s):
            if i + 1 < len(s) and s[i].startswith("red") and s[i + 1].startswith("house"):
                order += [i + 1, i]
                i += 2
            else:
                order.append(i)
                i += 1
        src.append(s)
        tgt.append([lexicon[s[j]] for j in order])
        gold.append({(t, j) for t, j in enumerate(order)})
    return src, tgt, gold


def test_words_split_punctuation_and_pieces_round_trip():
    assert words("In the beginning, God created.") == ["In", "the", "beginning", ",", "God", "created", "."]
    sentences = [words("In the beginning God created the heavens and the earth."),
                 words("En el principio crió Dios los cielos y la tierra.")] * 3
    tok = train_bpe(sentences, vocab_size=70)
    for s in sentences:
        pieces, word_ids = to_pieces(tok, s)
        assert len(pieces) > len(s)                   # a small vocabulary splits words
        assert sorted(set(word_ids)) == list(range(len(s)))
        assert detokenize(pieces) == " ".join(s)


def test_word_links_project_to_every_piece_pair_and_pooling_recovers_the_word_link():
    src_ids, tgt_ids = [0, 0, 1, 2, 2, 2], [0, 1, 1]      # 3 source words in 6 pieces, 2 target words in 3
    links = project_links({(0, 2), (1, 0)}, src_ids, tgt_ids)
    assert links == [(0, 3), (0, 4), (0, 5), (1, 0), (1, 1), (2, 0), (2, 1)]
    # an attention matrix whose rows are distributions stays one after pooling, and its argmax is the word
    rng = np.random.default_rng(0)
    att = rng.random((3, 6))
    att[0, 3:] += 5
    att[1:, :2] += 5
    att /= att.sum(1, keepdims=True)
    pooled = pool_to_words(att, src_ids, tgt_ids)
    assert pooled.shape == (2, 3)
    np.testing.assert_allclose(pooled.sum(1), 1.0)
    # target word 1 = mean of its two piece rows; source word 0 = sum of its two piece columns, and so on
    np.testing.assert_allclose(pooled[1], [att[1:, :2].sum(1).mean(), att[1:, 2].mean(), att[1:, 3:].sum(1).mean()])
    assert alignment_from_scores(pooled) == {(0, 2), (1, 0)}
    with pytest.raises(ValueError, match="do not match"):
        pool_to_words(att[:, :5], src_ids, tgt_ids)


def test_eflomal_recovers_a_known_alignment():
    src, tgt, gold = _parallel_corpus(400)
    sure, possible = eflomal_align(src, tgt)
    assert len(sure) == len(src)
    assert all(s <= p for s, p in zip(sure, possible))
    # the toy lexicon is one-to-one, so the symmetrised alignment should be almost exactly right
    assert corpus_aer(sure, gold) < 0.1
    with pytest.raises(ValueError, match="one sentence each"):
        eflomal_align(src, tgt[:-1])


def test_bible_task_splits_are_disjoint_capped_and_aligned():
    src, tgt, _ = _parallel_corpus(600, seed=1)
    pairs = pd.DataFrame({"book": "Gen", "chapter": 1, "verse": range(600), "en": [" ".join(s) + " ." for s in src],
                          "es": [" ".join(t) + " ." for t in tgt]})
    splits = build_bible_task(pairs, n_train=400, n_dev=50, n_test=50, max_subwords=14, vocab_size=150,
                              split_seed=3)
    texts = {k: {e.source_text for e in v} for k, v in splits.items()}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["dev"])
    assert 0 < len(splits["train"]) <= 400 and 0 < len(splits["test"]) <= 50
    for e in splits["train"] + splits["test"]:
        assert len(e.source) <= 14 and len(e.target) <= 14
        assert len(e.source_word_ids) == len(e.source) and len(e.target_word_ids) == len(e.target)
        assert detokenize(e.target) == e.target_text
        assert e.word_sure <= e.word_possible
        assert e.alignment == project_links(e.word_sure, e.source_word_ids, e.target_word_ids)
    # the same seed draws the same verses (the eflomal links are sampled, the split is not)
    again = build_bible_task(pairs, n_train=400, n_dev=50, n_test=50, max_subwords=14, vocab_size=150,
                             split_seed=3)
    assert [e.source for e in again["test"]] == [e.source for e in splits["test"]]
    with pytest.raises(ValueError, match="must leave training verses"):
        build_bible_task(pairs, n_train=None, n_dev=300, n_test=300, max_subwords=14, vocab_size=150, split_seed=3)
