import numpy as np
import pandas as pd
import pytest

from aine_lib.config import PlantedConfig, load_config
from aine_lib.data import load_dataset
from aine_lib.data.planted import KEYWORDS, generate_planted
from aine_lib.data.text import PAD, UNK, Vocabulary, stratified_split, stratified_subsample, tokenize


def test_tokenize_keeps_inner_apostrophes_and_splits_punctuation():
    assert tokenize("It's NOT the ''Conan'' film, is it?") == [
        "it's", "not", "the", "'", "'", "conan", "'", "'", "film", ",", "is", "it", "?"]


def test_vocabulary_is_frequency_then_alphabetical():
    vocab = Vocabulary.build([["b", "a", "c"], ["c", "a"], ["c"]])
    assert vocab.itos == [PAD, UNK, "c", "a", "b"]
    assert vocab.encode(["a", "zzz"]) == [3, 1]
    assert Vocabulary.build([["b", "a", "c"], ["c", "a"]], min_freq=2).itos == [PAD, UNK, "a", "c"]


def test_vocabulary_rejects_bad_specials():
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(["a", "b"])


def test_stratified_split_keeps_balance_and_partitions():
    labels = np.array([0] * 80 + [1] * 20)
    test, dev, train = stratified_split(labels, [0.1, 0.1], seed=0)
    assert sorted(np.concatenate([test, dev, train]).tolist()) == list(range(100))
    assert labels[test].sum() == 2 and len(test) == 10 and labels[dev].sum() == 2


def test_stratified_subsample_is_seeded_and_capped():
    df = pd.DataFrame({"label": [0, 1] * 50, "x": range(100)})
    a, b = stratified_subsample(df, 10, seed=1), stratified_subsample(df, 10, seed=1)
    assert len(a) == 10 and a["label"].sum() == 5 and a.equals(b)
    assert stratified_subsample(df, None, seed=1) is df


def test_planted_rationales_mark_exactly_the_majority_keywords():
    cfg = PlantedConfig(n_train=300, n_dev=10, n_test=10, max_signal_tokens=3, distractor_prob=0.5)
    df = generate_planted(300, cfg, seed=0)
    for tokens, label, rationale, k, d in df[["tokens", "label", "rationale", "n_signal", "n_distractor"]].itertuples(index=False):
        assert len(rationale) == len(tokens) and sum(rationale) == k and d < k
        marked = [t for t, r in zip(tokens, rationale) if r]
        assert all(t in KEYWORDS[label] for t in marked)
        opposite = [t for t in tokens if t in KEYWORDS[1 - label]]
        assert len(opposite) == d  # the rest are fillers: the label is decided by the marked tokens
    assert df["n_distractor"].gt(0).any()


def test_planted_same_seed_same_data_and_splits_differ(tiny_config):
    cfg = load_config(tiny_config())
    a, b = load_dataset("planted", cfg), load_dataset("planted", cfg)
    assert a.train["text"].equals(b.train["text"])
    assert not a.train["text"].head(20).reset_index(drop=True).equals(a.test["text"].head(20).reset_index(drop=True))
    assert a.has_rationales and {len(a.train), len(a.dev), len(a.test)} == {60, 20}


def test_unknown_dataset_name_lists_choices(tiny_config):
    with pytest.raises(ValueError, match="choose one of"):
        load_dataset("imdb", load_config(tiny_config()))
