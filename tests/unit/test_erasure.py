"""Serrano & Smith erasure: properties that can fail."""

from __future__ import annotations

import pytest
import torch

from aine_lib.interventions.erasure import (ORDERS, attention_gradient, erase_and_renormalise, fraction_until_flip,
                              ranking_orders, single_erasure)
from aine_lib.interventions.attention import output_distribution
from aine_lib.repro import make_generator
from tests.unit.test_interventions import ContextDecoder, batch


def test_erasing_a_zero_weight_item_changes_nothing():
    hidden, attention, mask = batch(seed=2)
    attention = attention.clone()
    attention[:, 0] = 0.0
    attention = attention / attention.sum(-1, keepdim=True)
    erase = torch.zeros_like(mask)
    erase[:, 0] = True
    erased = erase_and_renormalise(attention, erase)
    assert torch.allclose(erased, attention, atol=1e-7)
    decode = ContextDecoder()
    assert torch.allclose(decode(hidden, erased), decode(hidden, attention), atol=1e-6)


def test_erase_renormalises_and_empties_a_row_with_no_weight_left():
    _, attention, mask = batch(seed=3)
    erase = torch.zeros_like(mask)
    erase[:, 1] = True
    out = erase_and_renormalise(attention, erase)
    assert torch.allclose(out.sum(-1), torch.ones(len(out)), atol=1e-6)
    assert bool((out[:, 1] == 0).all())
    assert bool((erase_and_renormalise(attention, mask) == 0).all())
    # a saturated row: all weight on one item, the rest exactly 0 (float underflow) -> erasing it empties the row
    saturated = torch.zeros(1, 4)
    saturated[0, 2] = 1.0
    top = torch.tensor([[False, False, True, False]])
    assert bool((erase_and_renormalise(saturated, top) == 0).all())


def test_attention_order_erases_the_largest_weight_first_and_orders_are_permutations():
    hidden, attention, mask = batch(seed=4, B=8, T=10)
    orders = ranking_orders(ContextDecoder(), hidden, attention, mask, make_generator(0))
    assert set(orders) == set(ORDERS)
    assert torch.equal(orders["attention"][:, 0], attention.argmax(-1))
    n = mask.sum(-1)
    for name, order in orders.items():
        for b in range(len(order)):
            real = order[b, : n[b]].sort().values
            assert torch.equal(real, torch.arange(int(n[b]))), name
        weights = attention.gather(-1, orders["attention"])
        assert bool((weights[:, :-1] >= weights[:, 1:] - 1e-7).all())


def test_attention_gradient_matches_finite_differences():
    hidden, attention, mask = batch(seed=5, B=3, T=6)
    hidden, attention = hidden.double(), attention.double()
    decode = ContextDecoder().double()
    grad = attention_gradient(decode, hidden, attention)
    probs = output_distribution(decode(hidden, attention))
    chosen = probs.argmax(-1)
    eps = 1e-6
    for t in range(3):
        bumped = attention.clone()
        bumped[:, t] += eps
        p2 = output_distribution(decode(hidden, bumped)).gather(-1, chosen[:, None]).squeeze(-1)
        p1 = probs.gather(-1, chosen[:, None]).squeeze(-1)
        assert torch.allclose((p2 - p1) / eps, grad[:, t], atol=1e-5)


def test_single_erasure_flags_flips_and_skips_single_item_rows():
    hidden, attention, mask = batch(seed=6, B=10, T=7, min_len=1)
    mask[3] = False
    mask[3, 0] = True
    attention[3] = 0.0
    attention[3, 0] = 1.0
    decode = ContextDecoder(scale=3.0)
    out = single_erasure(decode, hidden, attention, mask, make_generator(1))
    assert int(out["n"][3]) == 1 and not bool(out["flip_top"][3]) and torch.isnan(out["jsd_random"][3])
    before = output_distribution(decode(hidden, attention)).argmax(-1)
    rows = torch.arange(10)
    random_pos = torch.stack([torch.nonzero((attention[b] == out["weight_random"][b]) & mask[b])[0, 0]
                              for b in range(10) if int(out["n"][b]) > 1])
    multi = rows[out["n"] > 1]
    assert bool((random_pos != attention[multi].argmax(-1)).all())      # r is never i*
    assert bool(mask[multi, random_pos].all())                          # r is a real item
    for b, r in zip(multi.tolist(), random_pos.tolist()):
        for name, pos in (("top", int(attention[b].argmax())), ("random", r)):
            erase = torch.zeros_like(mask)
            erase[b, pos] = True
            after = output_distribution(decode(hidden, erase_and_renormalise(attention, erase)))
            p_before = output_distribution(decode(hidden, attention))
            assert bool(out[f"flip_{name}"][b]) == bool(after[b].argmax() != before[b])
            from aine_lib.metrics.divergence import jensen_shannon
            assert float(out[f"jsd_{name}"][b]) == pytest.approx(float(jensen_shannon(after[b], p_before[b])),
                                                                  abs=1e-6)


def test_fraction_until_flip_matches_a_one_at_a_time_loop():
    hidden, attention, mask = batch(seed=7, B=12, T=9)
    decode = ContextDecoder(scale=2.0, seed=3)
    orders = ranking_orders(decode, hidden, attention, mask, make_generator(2))
    before = output_distribution(decode(hidden, attention)).argmax(-1)
    for name, order in orders.items():
        got = fraction_until_flip(decode, hidden, attention, mask, order, max_elements=50)  # tiny chunks
        for b in range(len(order)):
            n = int(mask[b].sum())
            expected = None
            for k in range(1, n + 1):
                erase = torch.zeros(1, mask.shape[1], dtype=torch.bool)
                erase[0, order[b, :k]] = True
                att = erase_and_renormalise(attention[b:b + 1], erase)
                if output_distribution(decode(hidden[b:b + 1], att)).argmax(-1).item() != before[b].item():
                    expected = k
                    break
            assert bool(got["flipped"][b]) == (expected is not None), (name, b)
            if expected is not None:
                assert int(got["removed"][b]) == expected
                assert float(got["fraction"][b]) == pytest.approx(expected / n)
            else:
                assert int(got["removed"][b]) == n + 1 and torch.isnan(got["fraction"][b])


def test_fraction_until_flip_rejects_an_order_that_puts_padding_first():
    hidden, attention, mask = batch(seed=8, B=4, T=6, min_len=2)
    mask[0, -1] = False
    attention[0] = torch.where(mask[0], attention[0], torch.zeros(()))
    attention[0] /= attention[0].sum()
    order = torch.arange(6).flip(0).expand(4, 6).contiguous()
    with pytest.raises(ValueError, match="real positions first"):
        fraction_until_flip(ContextDecoder(), hidden, attention, mask, order)
