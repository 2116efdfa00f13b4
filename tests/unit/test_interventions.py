"""Divergences, rank agreement, permutation and adversarial attention: properties that can fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aine_lib.interventions.attention import (AdversarialAttention, adversarial_attention_per_instance,
                                    output_distribution, permutation_output_change, permute_attention)
from aine_lib.metrics.divergence import jensen_shannon, total_variation
from aine_lib.metrics.rank import kendall_tau, kendall_tau_top_k
from aine_lib.repro import make_generator

LN2 = math.log(2.0)


def random_distributions(gen, *shape, sparsity=0.0):
    x = torch.rand(shape, generator=gen, dtype=torch.float64) ** 3
    if sparsity:
        x = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < sparsity, 0.0, x)
        x[..., 0] += 1e-3  # never an all-zero row
    return x / x.sum(-1, keepdim=True)


def batch(seed=0, B=6, T=9, H=5, min_len=2):
    """Random hidden states, mask (lengths min_len..T) and masked-softmax attention."""
    gen = make_generator(seed)
    lengths = torch.randint(min_len, T + 1, (B,), generator=gen)
    lengths[0] = T
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    hidden = torch.randn(B, T, H, generator=gen)
    scores = 2 * torch.randn(B, T, generator=gen)
    attention = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return hidden, attention, mask


class ContextDecoder(torch.nn.Module):
    """logits = W (sum_t a_t h_t) + b: the decoder of an additive-attention classifier."""

    def __init__(self, H=5, C=2, seed=0, scale=1.0):
        super().__init__()
        gen = make_generator(seed)
        self.linear = torch.nn.Linear(H, C)
        with torch.no_grad():
            self.linear.weight.copy_(scale * torch.randn(C, H, generator=gen))
            self.linear.bias.copy_(torch.randn(C, generator=gen))

    def forward(self, hidden, attention):
        return self.linear(torch.einsum("nt,nth->nh", attention, hidden))


# ----- divergences -------------------------------------------------------------

def test_jsd_zero_on_equal_bounded_and_symmetric():
    gen = make_generator(1)
    p = random_distributions(gen, 200, 7, sparsity=0.4)
    q = random_distributions(gen, 200, 7, sparsity=0.4)
    assert torch.allclose(jensen_shannon(p, p), torch.zeros(200, dtype=p.dtype), atol=1e-12)
    jpq, jqp = jensen_shannon(p, q), jensen_shannon(q, p)
    assert torch.allclose(jpq, jqp, atol=1e-12)
    assert bool((jpq >= 0).all() and (jpq <= LN2).all())
    assert float(jpq.max()) > 0.05  # not trivially zero
    # natural log: the same value as scipy's (squared) jensenshannon distance
    from scipy.spatial.distance import jensenshannon
    ref = jensenshannon(p[:5].numpy(), q[:5].numpy(), axis=-1) ** 2
    assert np.allclose(jpq[:5].numpy(), ref, atol=1e-10)


def test_jsd_disjoint_supports_is_ln2_and_gradient_is_finite():
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    q = torch.tensor([[0.0, 0.0, 0.1, 0.9]])
    assert jensen_shannon(p, q).item() == pytest.approx(LN2, abs=1e-6)
    logits = torch.tensor([[0.0, 1.0, -float("inf"), 2.0]], requires_grad=True)
    a = torch.softmax(logits, -1)
    jensen_shannon(a, torch.tensor([[0.0, 0.0, 0.3, 0.7]])).sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_jsd_mask_ignores_padding_and_tvd_in_unit_interval():
    gen = make_generator(2)
    p, q = random_distributions(gen, 50, 6), random_distributions(gen, 50, 6)
    mask = torch.tensor([True] * 6)
    assert torch.allclose(jensen_shannon(p, q, mask), jensen_shannon(p, q))
    tvd = total_variation(p, q)
    assert bool((tvd >= 0).all() and (tvd <= 1).all())
    assert total_variation(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])).item() == 1.0


# ----- rank agreement -----------------------------------------------------------

def test_kendall_tau_identical_scores_is_one():
    a = np.array([0.3, 0.1, 0.9, 0.4, 0.05])
    tau, p = kendall_tau(a, a)
    assert tau == pytest.approx(1.0) and 0 <= p <= 1
    assert kendall_tau(a, -a)[0] == pytest.approx(-1.0)


def test_top_k_tau_ignores_the_tail():
    # Same order on the 3 largest scores, reversed order on the 17-token tail.
    head = np.array([10.0, 9.0, 8.0])
    a = np.concatenate([head, np.arange(17, dtype=float)[::-1] * 0.01])
    b = np.concatenate([head, np.arange(17, dtype=float) * 0.01])
    assert kendall_tau(a, b)[0] < 0.3
    assert kendall_tau_top_k(a, b, 3) == pytest.approx(1.0)
    assert math.isnan(kendall_tau_top_k(a, b, 1))  # union {0}: one item
    with pytest.raises(ValueError, match="k must be"):
        kendall_tau_top_k(a, b, 0)


# ----- permutation ---------------------------------------------------------------

def test_permuted_rows_are_rearrangements_with_padding_zero():
    _, attention, mask = batch(seed=3)
    perm = permute_attention(attention, mask, 20, make_generator(0))
    assert perm.shape == (20, *attention.shape)
    assert torch.allclose(perm.sum(-1), torch.ones(20, attention.shape[0]), atol=1e-6)
    assert bool((perm.masked_select(~mask.expand_as(perm)) == 0).all())
    for b in range(attention.shape[0]):
        real = attention[b][mask[b]].sort().values
        for p in range(20):
            assert torch.equal(perm[p, b][mask[b]].sort().values, real)
    assert not torch.equal(perm[:, 0], attention[0].expand(20, -1))  # it does shuffle


def test_permuting_uniform_attention_changes_nothing():
    hidden, _, mask = batch(seed=4)
    uniform = mask.float() / mask.sum(-1, keepdim=True)
    change = permutation_output_change(ContextDecoder(scale=3.0), hidden, uniform, mask, 15,
                                       make_generator(0), batch_chunk=4)
    assert change.shape == (mask.shape[0],)
    assert torch.allclose(change, torch.zeros_like(change), atol=1e-6)


def test_permutation_changes_peaked_attention_and_chunks_agree():
    hidden, attention, mask = batch(seed=5)
    decoder = ContextDecoder(scale=3.0)
    a = permutation_output_change(decoder, hidden, attention, mask, 15, make_generator(7), batch_chunk=2)
    b = permutation_output_change(decoder, hidden, attention, mask, 15, make_generator(7), batch_chunk=64)
    assert torch.allclose(a, b, atol=1e-6)
    assert float(a.max()) > 0.01 and bool((a >= 0).all() and (a <= 1).all())


def test_attention_checks_name_the_fix():
    _, attention, mask = batch(seed=6)
    with pytest.raises(ValueError, match="exactly 0 at padding"):
        permute_attention(attention + 0.01 * (~mask), mask, 2, make_generator(0))
    with pytest.raises(ValueError, match="sum to 1"):
        permute_attention(attention * 0.5, mask, 2, make_generator(0))


def test_single_binary_logit_reads_as_two_classes():
    probs = output_distribution(torch.tensor([[0.0], [100.0]]))
    assert torch.allclose(probs, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))


# ----- adversarial attention -------------------------------------------------------

ADV = dict(n_candidates=3, epsilon=0.01, steps=60, lr=0.1)


def check_adversarial(result, decoder, hidden, attention, mask, epsilon):
    with torch.no_grad():
        original = output_distribution(decoder(hidden, attention))
        tvd = total_variation(output_distribution(decoder(hidden, result.attention)), original)
    assert bool((tvd <= epsilon).all()), tvd
    assert torch.allclose(tvd, result.tvd, atol=1e-7)
    assert bool((result.jsd >= 0).all() and (result.jsd <= LN2).all())
    assert torch.allclose(result.attention.sum(-1), torch.ones(len(mask)), atol=1e-5)
    assert bool((result.attention.masked_select(~mask) == 0).all())
    assert torch.allclose(result.jsd, jensen_shannon(result.attention, attention), atol=1e-6)
    lost = ~result.found
    assert torch.equal(result.attention[lost], attention[lost]) and bool((result.jsd[lost] == 0).all())


def test_adversary_stays_within_epsilon():
    hidden, attention, mask = batch(seed=8)
    decoder = ContextDecoder(scale=2.0)
    result = AdversarialAttention(decoder, **ADV).search(hidden, attention, mask, make_generator(0))
    check_adversarial(result, decoder, hidden, attention, mask, ADV["epsilon"])
    assert bool(result.found.any())
    assert all(p.grad is None for p in decoder.parameters())  # the decoder is left untouched


def test_adversary_finds_large_jsd_when_output_ignores_context():
    hidden, attention, mask = batch(seed=9, min_len=6)
    decoder = ContextDecoder(scale=0.0)  # zero weights: every attention is feasible
    result = AdversarialAttention(decoder, **ADV).search(hidden, attention, mask, make_generator(0))
    check_adversarial(result, decoder, hidden, attention, mask, ADV["epsilon"])
    assert bool(result.found.all())
    assert float(result.jsd.min()) > 0.3


def test_adversary_same_seed_same_result_and_per_instance_runs():
    hidden, attention, mask = batch(seed=10, B=3)
    decoder = ContextDecoder(scale=2.0)
    adversary = AdversarialAttention(decoder, **ADV)
    r1 = adversary.search(hidden, attention, mask, make_generator(42))
    r2 = adversary.search(hidden, attention, mask, make_generator(42))
    for field in ("jsd", "attention", "tvd", "found"):
        assert torch.equal(getattr(r1, field), getattr(r2, field))
    single = adversarial_attention_per_instance(decoder, hidden, attention, mask, make_generator(42), **ADV)
    check_adversarial(single, decoder, hidden, attention, mask, ADV["epsilon"])
    assert single.attention.shape == attention.shape
