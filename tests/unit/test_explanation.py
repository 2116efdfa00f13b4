"""The Explanation result type (frame, plot, files, checks) and explain() on the study's own models."""

from __future__ import annotations

import dataclasses
import pickle

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from aine_lib import Explanation, explain  # noqa: E402
from aine_lib.data.text import Vocabulary, tokenize  # noqa: E402
from aine_lib.models.rnn_attention import AttentionClassifier, RNNClassifierConfig  # noqa: E402


def classifier_example() -> Explanation:
    return Explanation("integrated_gradients", "m", [np.array([0.5, -0.25, 0.0]), np.array([1.0, 2.0])], [1, 0],
                       tokens=[["a", "fine", "film"], ["dull", "!"]], deltas=np.array([1e-4, -2e-4]), signed=True,
                       options={"n_steps": 8})


def seq2seq_example() -> Explanation:
    scores = [np.arange(6, dtype=float).reshape(2, 3) / 10, np.array([[0.3, 0.7]])]
    prefix = [np.array([[0.1, 0.0], [0.2, 0.3]]), np.array([[0.5]])]
    return Explanation("rollout", "s2s", scores, [[7, 2], [2]], tokens=[["x", "y", "</s>"], ["z", "</s>"]],
                       target_tokens=[["b", "</s>"], ["</s>"]], target_scores=prefix, family="seq2seq")


def test_to_frame_has_one_row_per_token_with_its_score():
    e = classifier_example()
    df = e.to_frame()
    assert len(df) == 5 and list(df.columns) == ["example", "method", "target", "position", "token", "score"]
    assert df["token"].tolist() == ["a", "fine", "film", "dull", "!"]
    assert df["score"].tolist() == [0.5, -0.25, 0.0, 1.0, 2.0]
    assert df["example"].tolist() == [0, 0, 0, 1, 1] and df["target"].tolist() == [1, 1, 1, 0, 0]
    assert df["position"].tolist() == [0, 1, 2, 0, 1] and set(df["method"]) == {"integrated_gradients"}


def test_to_frame_of_an_encoder_decoder_has_one_row_per_step_and_source_token():
    df = seq2seq_example().to_frame()
    assert len(df) == 2 * 3 + 1 * 2
    assert {"step", "target_token", "position", "token", "score"} <= set(df.columns)
    row = df[(df["example"] == 0) & (df["step"] == 1) & (df["position"] == 2)].iloc[0]
    assert row["target_token"] == "</s>" and row["token"] == "</s>" and row["score"] == pytest.approx(0.5)


def test_plot_draws_a_token_row_and_a_step_by_source_grid():
    from matplotlib.figure import Figure

    fig = classifier_example().plot(0)
    assert isinstance(fig, Figure)
    image = fig.axes[0].get_images()[0]
    assert np.allclose(image.get_array(), [[0.5, -0.25, 0.0]])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "fine", "film"]
    assert image.get_clim() == (-0.5, 0.5)                      # signed: symmetric around 0
    fig = seq2seq_example().plot(0)
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_images()[0].get_array().shape == (2, 3)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "</s>"]
    matplotlib.pyplot.close("all")


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("make", [classifier_example, seq2seq_example])
def test_save_and_load_give_back_an_equal_explanation(tmp_path, make):
    e = make()
    back = Explanation.load(e.save(tmp_path / "e.pkl"))
    assert type(back) is Explanation
    for field in dataclasses.fields(Explanation):                 # every field, arrays compared exactly
        assert _same(getattr(back, field.name), getattr(e, field.name)), field.name
    assert not _same(back.scores, make().scores[::-1])              # the comparison itself can fail
    assert not list(tmp_path.glob("*.tmp"))                        # written atomically, nothing left behind
    with open(tmp_path / "other.pkl", "wb") as f:
        pickle.dump({"scores": []}, f)
    with pytest.raises(TypeError, match="not an Explanation"):
        Explanation.load(tmp_path / "other.pkl")


def test_the_constructor_refuses_rows_that_do_not_line_up():
    s = [np.zeros(3), np.zeros(2)]
    with pytest.raises(ValueError, match="score rows but 1 targets"):
        Explanation("m", "x", s, [0])
    with pytest.raises(ValueError, match="tokens rows"):
        Explanation("m", "x", s, [0, 1], tokens=[["a", "b", "c"]])
    with pytest.raises(ValueError, match="example 1: 2 scores for 3 tokens"):
        Explanation("m", "x", s, [0, 1], tokens=[["a", "b", "c"], ["a", "b", "c"]])
    with pytest.raises(ValueError, match="target_scores rows"):
        Explanation("m", "x", s, [0, 1], target_scores=[np.zeros((1, 1))])
    assert len(Explanation("m", "x", s, [0, 1], tokens=[["a", "b", "c"], ["d", "e"]])) == 2


# ----- explain() on the study's models ------------------------------------------------------------------

def _rnn_and_vocabulary():
    torch.manual_seed(0)
    vocab = Vocabulary(["<pad>", "<unk>", "the", "film", "was", "dull", "a", "gem", "!", "not"])
    model = AttentionClassifier(RNNClassifierConfig("lstm", "additive", vocab_size=len(vocab), embed_dim=8,
                                                    hidden_dim=6)).eval()
    return model, vocab


def test_explain_on_the_rnn_with_a_study_vocabulary_and_strings():
    model, vocab = _rnn_and_vocabulary()
    texts = ["The film was DULL!", "a gem", "not a wombat"]              # 'wombat' is not in the vocabulary
    out = explain(model, vocab, texts, methods=["attention", "gradient", "loo"])
    assert set(out) == {"attention", "gradient", "loo"}
    for name, e in out.items():
        assert e.tokens == [tokenize(t) for t in texts], name           # the words, unknown ones included
        assert [len(s) for s in e.scores] == [5, 2, 3], name
        assert all(np.isfinite(s).all() for s in e.scores), name
    # the attention of each text is the model's own, computed by hand on the encoded words
    for text, scores, target in zip(texts, out["attention"].scores, out["attention"].targets):
        ids = torch.tensor([vocab.encode(tokenize(text))])
        with torch.no_grad():
            result = model(ids, torch.ones_like(ids, dtype=torch.bool))
        assert np.allclose(scores, result.attention[0].numpy(), atol=1e-6)
        assert target == int(result.logits.argmax(-1))                # the prediction is what is explained
    assert out["attention"].family == "classifier" and not out["attention"].signed
    # token lists and id lists give the same scores as the strings
    tokens = [tokenize(t) for t in texts]
    for inputs in (tokens, [vocab.encode(t) for t in tokens]):
        again = explain(model, vocab, inputs, methods=["attention"])["attention"]
        assert all(np.allclose(a, b) for a, b in zip(again.scores, out["attention"].scores))
    with pytest.raises(ValueError, match="tokenizer"):
        explain(model, None, texts, methods=["attention"])
    with pytest.raises(ValueError, match="non-empty list"):
        explain(model, vocab, "a single string", methods=["attention"])


def test_explain_on_the_study_encoder_decoder_generates_then_explains():
    from aine_lib.models.seq2seq_training import TokenVocabulary
    from aine_lib.models.transformer import Seq2SeqConfig, Seq2SeqTransformer

    torch.manual_seed(0)
    vocab = TokenVocabulary(["a", "b", "c", "d"])
    model = Seq2SeqTransformer(Seq2SeqConfig(src_vocab=len(vocab), tgt_vocab=len(vocab), d_model=16, heads=2,
                                             encoder_layers=1, decoder_layers=1, d_ff=32, dropout=0.0,
                                             max_len=16)).eval()
    out = explain(model, vocab, ["a b c", "d"], methods=["cross_attention", "rollout"], max_new_tokens=3)
    e = out["cross_attention"]
    with torch.no_grad():
        from aine_lib.models.seq2seq_training import collate_pairs

        b = collate_pairs([vocab.encode(["a", "b", "c"]), vocab.encode(["d"])], [[0], [0]])
        greedy = model.greedy(b.src, b.src_mask, max_len=3)
    assert e.tokens == [["a", "b", "c"], ["d"]]
    assert e.target_tokens == [vocab.decode(g) + ["</s>"] for g in greedy]
    assert [s.shape for s in e.scores] == [(len(greedy[0]) + 1, 3), (len(greedy[1]) + 1, 1)]
    for src, prefix in zip(out["rollout"].scores, out["rollout"].target_scores):
        assert np.allclose(src.sum(-1) + prefix.sum(-1), 1.0, atol=1e-5)
