"""Property-based tests (hypothesis) of the data layer's invariants."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aine_lib.data.text import Vocabulary, stratified_split, tokenize
from aine_lib.cache import params_key

words = st.text(alphabet="abcdefghij'", min_size=1, max_size=6).filter(lambda w: w.strip("'"))


@given(st.lists(st.integers(0, 2), min_size=1, max_size=200),
       st.lists(st.floats(0.05, 0.3), min_size=1, max_size=2), st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_stratified_split_is_a_partition(labels, fractions, seed):
    parts = stratified_split(labels, fractions, seed)
    joined = np.sort(np.concatenate(parts))
    assert joined.tolist() == list(range(len(labels)))
    assert all(np.all(np.diff(p) > 0) for p in parts)


@given(st.lists(st.lists(words, min_size=1, max_size=10), min_size=1, max_size=20))
@settings(max_examples=60, deadline=None)
def test_vocabulary_round_trips_training_tokens(corpus):
    vocab = Vocabulary.build(corpus)
    for tokens in corpus:
        assert vocab.decode(vocab.encode(tokens)) == list(tokens)


@given(st.lists(st.text(alphabet="abc xyz,.!'", max_size=40), max_size=5))
@settings(max_examples=60, deadline=None)
def test_tokenize_is_idempotent_on_joined_tokens(texts):
    for text in texts:
        tokens = tokenize(text)
        assert tokenize(" ".join(tokens)) == tokens


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=6))
@settings(max_examples=60, deadline=None)
def test_params_key_ignores_insertion_order(d):
    assert params_key(d) == params_key(dict(reversed(list(d.items()))))
