"""CPU speed levers of the synthetic default, measured against each other in one process.

Each configuration (precision x image size) builds the real source step and fine-tuning
steps of ``lf2.train.bench_steps`` (``pretrain_random_step``, ``finetune_random_step``) on random images; the timed
rounds are interleaved (A B C A B C ...) so that a change in the machine's load hits every
configuration alike. Reported per step: the median over rounds of wall and of this
process's CPU seconds (``time.process_time``), and the ratio to the first configuration::

    python benchmarks/speed_levers.py --threads 1 --rounds 5 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch

    from lf2.config import apply_overrides, load_params
    from lf2.train import bench_steps

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=str(ROOT / "params/default.yaml"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4, help="steps per timed round")
    ap.add_argument("--configs", nargs="*", default=["fp32:64x32", "bf16:64x32", "fp32:32x16", "bf16:32x16"])
    ap.add_argument("--steps-of", nargs="*", default=["source", "baseline", "lf2"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = load_params(args.params)
    total = args.rounds * args.steps + 4
    steps = {}
    for cfg in args.configs:
        prec, size = cfg.split(":")
        h, w = size.split("x")
        p = apply_overrides(base, [f"precision={prec}", f"input.height={h}", f"input.width={w}"])
        for kind in args.steps_of:
            fn = (bench_steps.pretrain_random_step(p, "cpu", total) if kind == "source"
                  else bench_steps.finetune_random_step(p, kind, "shared", "cpu", total))
            fn()  # warm-up (allocations, oneDNN kernel choice)
            steps[(cfg, kind)] = fn
    wall: dict = {k: [] for k in steps}
    cpu: dict = {k: [] for k in steps}
    for _ in range(args.rounds):
        for k, fn in steps.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                loss = fn()
            float(loss)
            wall[k].append((time.perf_counter() - w0) / args.steps)
            cpu[k].append((time.process_time() - c0) / args.steps)
    print(f"threads {args.threads}, {args.rounds} interleaved rounds of {args.steps} steps, batch "
          f"{base['finetune']['batch_p']}x{base['finetune']['batch_k']}, {base['model']['arch']}")
    print("| step | precision:size | wall s/step (median) | CPU s/step (median) | CPU / first config |")
    print("|---|---|---|---|---|")
    for kind in args.steps_of:
        ref = statistics.median(cpu[(args.configs[0], kind)])
        for cfg in args.configs:
            c = statistics.median(cpu[(cfg, kind)])
            print(f"| {kind} | {cfg} | {statistics.median(wall[(cfg, kind)]):.3f} | {c:.3f} | {c / ref:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
