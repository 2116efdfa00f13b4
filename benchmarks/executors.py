"""Wall time of one scaling grid run serially, on the local process pool and on a local Ray instance.

Each executor gets a fresh cache (so nothing is a cache hit) and the same tiny planted grid; the script
prints the time of each, its speed-up over serial, and whether the results agree with the serial run.
The serial run uses all the machine's threads in one process; the pool and Ray give each worker its share.
On 2 cores the pool is bounded by 2x; small models gain more than large ones, because one torch process with
two threads scales poorly on them.

    .venv/bin/python benchmarks/executors.py [--points 8] [--workers 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from aine_lib.config import load_config
from aine_lib.study.executors import LocalExecutor, SerialExecutor
from aine_lib.experiments import scaling as sc

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8, help="grid points (scratch Transformers on planted)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    base = load_config(REPO / "configs" / "smoke.yaml", {"progress": False})
    points = [sc.ScalingPoint("scratch", "planted", 1.0, seed, layers=1, hidden=16) for seed in range(args.points)]
    executors = [("serial", SerialExecutor)]
    executors.append((f"local x{args.workers}", lambda: LocalExecutor(args.workers)))
    if not args.no_ray:
        from aine_lib.study.executors import RayExecutor

        executors.append((f"ray x{args.workers}", lambda: RayExecutor(workers=args.workers)))
    reference, serial_time = None, None
    for name, make in executors:
        with tempfile.TemporaryDirectory() as cache:
            cfg = replace(base, cache_dir=cache, notebooks=())
            executor = make()
            started = time.perf_counter()
            results = sc.run_grid(cfg, points, executor)
            seconds = time.perf_counter() - started
            executor.close()
        values = np.concatenate([r["methods"]["aopc_comprehensiveness"].to_numpy() for r in results])
        if reference is None:
            reference, serial_time = values, seconds
        agree = np.allclose(values, reference, atol=1e-5, equal_nan=True)
        print(f"{name:10s} {len(points)} points  {seconds:7.1f} s  speed-up {serial_time / seconds:4.2f}x  "
              f"results agree with serial: {agree}")


if __name__ == "__main__":
    main()
