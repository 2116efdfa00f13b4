"""The key/value cache of greedy and beam search: the same tokens and logits as re-decoding the whole prefix."""

from __future__ import annotations

import pytest
import torch

from aine_lib.data.transduction import make_task
from aine_lib.models.decoding import KeyValueCache
from aine_lib.models.seq2seq_training import TokenVocabulary, collate_pairs, sequence_loss
from aine_lib.models.transformer import Seq2SeqConfig, Seq2SeqTransformer

NORMALISERS = ("softmax", "entmax15")


def random_model(normaliser: str, seed: int = 3) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    return Seq2SeqTransformer(Seq2SeqConfig(src_vocab=20, tgt_vocab=20, d_model=32, heads=4, encoder_layers=2,
                                            decoder_layers=2, d_ff=64, dropout=0.0, max_len=32,
                                            cross_normaliser=normaliser)).eval()


@pytest.fixture(scope="module", params=NORMALISERS)
def trained(request):
    """A model trained for 20 Adam steps on string reversal (half-learnt: varied outputs that stop at
    different steps, close calls between tokens) and 12 of its training sources, of 2-8 tokens."""
    examples = make_task("reverse", 40, seed=0, min_len=2, max_len=8)
    vocab = TokenVocabulary.build([e.source for e in examples])
    b = collate_pairs([vocab.encode(e.source) for e in examples], [vocab.encode(e.target) for e in examples])
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig(src_vocab=len(vocab), tgt_vocab=len(vocab), d_model=32, heads=4,
                                             encoder_layers=2, decoder_layers=2, d_ff=64, dropout=0.0,
                                             max_len=32, cross_normaliser=request.param))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(20):
        loss = sequence_loss(model(b.src, b.src_mask, b.tgt_in, b.tgt_mask).logits, b.tgt_out)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    sources = [vocab.encode(e.source) for e in examples[:12]]
    return model.eval(), collate_pairs(sources, [[3]] * len(sources))


def random_sources(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    src = [torch.randint(3, 20, (n,), generator=gen).tolist() for n in (6, 3, 9, 1, 5)]
    return collate_pairs(src, [[3]] * len(src))


def check_same_tokens(model: Seq2SeqTransformer, b, max_len: int) -> list[list[int]]:
    cached = model.greedy(b.src, b.src_mask, max_len=max_len)
    assert cached == model.greedy(b.src, b.src_mask, max_len=max_len, use_cache=False)
    for beam, penalty in ((1, 0.0), (4, 1.0)):                      # the Bible's beam search: length-normalised
        kwargs = {"beam": beam, "max_len": max_len, "length_penalty": penalty}
        assert (model.beam_search(b.src, b.src_mask, **kwargs)
                == model.beam_search(b.src, b.src_mask, **kwargs, use_cache=False))
    return cached


@pytest.mark.parametrize("normaliser", NORMALISERS)
def test_random_model_decodes_the_same_tokens_with_and_without_the_cache(normaliser):
    check_same_tokens(random_model(normaliser), random_sources(), max_len=12)


def test_trained_model_decodes_the_same_tokens_with_and_without_the_cache(trained):
    model, b = trained
    greedy = check_same_tokens(model, b, max_len=10)
    assert len({len(g) for g in greedy}) > 4                # not degenerate: outputs stop at different steps
    assert len({t for g in greedy for t in g}) > 10


def step_logits(model: Seq2SeqTransformer, src, src_mask, tgt_in) -> torch.Tensor:
    memory, _, _ = model.encode(src, src_mask)
    cache = KeyValueCache.for_memory(model.decoder, memory, src_mask)
    return torch.stack([model.decode_step(tgt_in[:, t], cache) for t in range(tgt_in.shape[1])], 1)


@pytest.mark.parametrize("normaliser", NORMALISERS)
@torch.no_grad()
def test_cached_steps_equal_the_teacher_forced_logits_at_every_position(normaliser):
    model, b = random_model(normaliser), random_sources(2)
    tgt_in = torch.randint(3, 20, (b.src.shape[0], 10), generator=torch.Generator().manual_seed(0))
    full = model(b.src, b.src_mask, tgt_in, torch.ones_like(tgt_in, dtype=torch.bool)).logits
    assert torch.allclose(step_logits(model, b.src, b.src_mask, tgt_in), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_trained_cached_steps_equal_the_teacher_forced_logits(trained):
    model, b = trained
    tgt_in = torch.randint(3, model.cfg.tgt_vocab, (b.src.shape[0], 12), generator=torch.Generator().manual_seed(0))
    full = model(b.src, b.src_mask, tgt_in, torch.ones_like(tgt_in, dtype=torch.bool)).logits
    assert torch.allclose(step_logits(model, b.src, b.src_mask, tgt_in), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_reordering_the_cache_equals_decoding_the_reordered_prefixes():
    model, b = random_model("softmax"), random_sources(3)
    tgt_in = torch.randint(3, 20, (b.src.shape[0], 4), generator=torch.Generator().manual_seed(1))
    memory, _, _ = model.encode(b.src, b.src_mask)
    cache = KeyValueCache.for_memory(model.decoder, memory, b.src_mask)
    for t in range(3):
        model.decode_step(tgt_in[:, t], cache)
    index = torch.tensor([4, 0, 0, 2])
    cache.reorder(index)
    after = model.decode_step(tgt_in[index, 3], cache)
    full = model(b.src[index], b.src_mask[index], tgt_in[index], torch.ones(4, 4, dtype=torch.bool)).logits
    assert torch.allclose(after, full[:, -1], atol=1e-5, rtol=0)


def test_cache_refuses_dropout_in_training_mode_and_respects_max_len():
    model, b = random_model("softmax"), random_sources()
    dropout = Seq2SeqTransformer(Seq2SeqConfig(src_vocab=20, tgt_vocab=20, d_model=32, heads=4, dropout=0.1))
    with pytest.raises(ValueError, match="eval"):
        dropout.train().greedy(b.src, b.src_mask, max_len=3)
    dropout.greedy(b.src, b.src_mask, max_len=3, use_cache=False)           # the old path still samples dropout
    with pytest.raises(ValueError, match="max_len"):
        model.greedy(b.src, b.src_mask, max_len=40)
    with pytest.raises(ValueError, match="max_len"):
        model.greedy(b.src, b.src_mask, max_len=40, use_cache=False)

