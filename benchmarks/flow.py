"""Attention flow (Abnar & Zuidema 2020): aine's exact max-flow against a networkx reference.

Prints the largest difference of the flows (target: within 1e-6) and the speed-up (target: >= 100x) on
random attention with ``--layers`` layers and ``--tokens`` tokens (defaults 6 and 64, the issue's size),
one sink ([CLS]), the median of ``--repeats`` runs of aine's version against one networkx run.

    python benchmarks/flow.py [--layers 6] [--tokens 64] [--heads 4] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import networkx as nx
import numpy as np
import torch

from aine_lib.attribution.propagation import attention_flow, residual_attention


def networkx_flow(residual: list[np.ndarray], sink: int = 0) -> np.ndarray:
    """The same layered graph in networkx (float capacities, preflow-push): the reference."""
    L, T = len(residual), residual[0].shape[0]
    graph = nx.DiGraph()
    for layer, a in enumerate(residual, start=1):
        for i in ([sink] if layer == L else range(T)):
            for j in range(T):
                if a[i, j] > 0:
                    graph.add_edge((layer - 1, j), (layer, i), capacity=float(a[i, j]))
    return np.array([nx.maximum_flow_value(graph, (0, j), (L, sink)) for j in range(T)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(args.seed)
    logits = torch.randn(args.layers, 1, args.heads, args.tokens, args.tokens, generator=gen, dtype=torch.float64)
    residual = [residual_attention(torch.softmax(3 * a, -1))[0].numpy() for a in logits]
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        ours = attention_flow(residual)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    reference = networkx_flow(residual)
    t_ref = time.perf_counter() - started
    t_ours = statistics.median(times)
    print(f"attention flow, {args.layers} layers x {args.tokens} tokens, threads {torch.get_num_threads()}")
    print(f"aine (exact min cut): {t_ours:.3f} s; networkx: {t_ref:.2f} s; speed-up {t_ref / t_ours:.0f}x; "
          f"max |difference| {np.abs(ours - reference).max():.2e}")


if __name__ == "__main__":
    main()
