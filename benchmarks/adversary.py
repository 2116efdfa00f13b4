"""Batched vs per-instance adversarial attention search (Jain & Wallace 2019, section 4.3).

Times ``AdversarialAttention.search`` (the whole batch optimised at once)
against ``adversarial_attention_per_instance`` (J&W's one-instance loop) on the
same random instances, and checks that the two find the same distribution of
max-JSD values. Target: batched >= 10x the per-instance throughput on CPU.

    .venv/bin/python benchmarks/adversary.py
    .venv/bin/python benchmarks/adversary.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from scipy import stats

from aine_lib.interventions.attention import AdversarialAttention, adversarial_attention_per_instance
from aine_lib.repro import get_device, make_generator


class ContextDecoder(torch.nn.Module):
    """logits = Linear(sum_t a_t h_t): the decoder of an additive-attention classifier."""

    def __init__(self, hidden: int, n_classes: int, generator: torch.Generator):
        super().__init__()
        self.linear = torch.nn.Linear(hidden, n_classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(n_classes, hidden, generator=generator) / hidden ** 0.5 * 3)
            self.linear.bias.zero_()

    def forward(self, hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.einsum("nt,nth->nh", attention, hidden))


def instances(n: int, length: int, hidden: int, generator: torch.Generator):
    """Random hidden states, lengths in [length/2, length], masked-softmax attention."""
    lengths = torch.randint(max(2, length // 2), length + 1, (n,), generator=generator)
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    h = torch.randn(n, length, hidden, generator=generator)
    scores = 2 * torch.randn(n, length, generator=generator)
    attention = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return h, attention, mask


def timed(fn, device: torch.device, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-instances", type=int, default=64)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=200, help="Adam steps (J&W use 500)")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = get_device(args.device)
    gen = make_generator(args.seed)
    decoder = ContextDecoder(args.hidden, args.classes, gen).to(device).eval()
    h, attention, mask = (t.to(device) for t in instances(args.n_instances, args.length, args.hidden, gen))
    options = dict(n_candidates=args.candidates, epsilon=args.epsilon, steps=args.steps)
    adversary = AdversarialAttention(decoder, **options)

    print(f"device={device} threads={torch.get_num_threads()} n={args.n_instances} T={args.length} "
          f"H={args.hidden} K={args.candidates} steps={args.steps} epsilon={args.epsilon}")
    t_batched, batched = timed(lambda: adversary.search(h, attention, mask, make_generator(args.seed + 1)),
                               device, args.repeats)
    t_single, single = timed(lambda: adversarial_attention_per_instance(
        decoder, h, attention, mask, make_generator(args.seed + 1), **options), device, args.repeats)

    n = args.n_instances
    print(f"batched       median {t_batched:8.3f} s  {n / t_batched:9.1f} instances/s")
    print(f"per-instance  median {t_single:8.3f} s  {n / t_single:9.1f} instances/s")
    ratio = t_single / t_batched
    print(f"throughput ratio batched/per-instance {ratio:.1f}x  (target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")

    jb, js = batched.jsd.cpu().numpy(), single.jsd.cpu().numpy()
    ks = stats.ks_2samp(jb, js)
    print(f"max-JSD mean batched {jb.mean():.4f}  per-instance {js.mean():.4f}  "
          f"mean |diff| {abs(jb - js).mean():.4f}  KS p-value {ks.pvalue:.3f}")
    print(f"feasible found batched {batched.found.float().mean():.3f}  per-instance {single.found.float().mean():.3f}  "
          f"max TVD batched {batched.tvd.max():.5f}  per-instance {single.tvd.max():.5f} (epsilon {args.epsilon})")


if __name__ == "__main__":
    main()
