#!/usr/bin/env python3
"""Run a command on a GPU of its own: claim a free GPU index, export CUDA_VISIBLE_DEVICES, exec.

Snakemake counts GPUs (``resources: gpu=1`` with ``--resources gpu=N``) but never says
WHICH GPU a job gets. This wrapper picks one: it takes an exclusive ``flock`` on
``<lock-dir>/gpu<ID>.lock`` for the first free ID, makes the lock file descriptor
inheritable, sets ``CUDA_VISIBLE_DEVICES=<ID>`` and ``exec``s the command. The lock lives
as long as the command's process and is released by the kernel when it exits, even when
it is killed, so no stale lock survives a crash.

    gpu_slot.py [--gpus N] [--lock-dir DIR] [--wait SECONDS] -- lf2 finetune ...

GPU IDs: ``--gpus N`` > 0 means IDs 0..N-1 (mapped through an existing
CUDA_VISIBLE_DEVICES list, if the environment has one); 0 means every GPU that
``nvidia-smi -L`` lists. With no GPU at all the command runs unchanged. Standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time


def visible_ids(n: int) -> list[str]:
    """The GPU IDs this machine (or the inherited CUDA_VISIBLE_DEVICES) offers."""
    inherited = [s for s in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if s.strip()]
    if inherited:
        return inherited[:n] if n > 0 else inherited
    if n > 0:
        return [str(i) for i in range(n)]
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def try_claim(ids: list[str], lock_dir: str) -> tuple[str, int] | None:
    """Lock the first free ID; return (ID, inheritable fd) or None when all are taken."""
    os.makedirs(lock_dir, mode=0o777, exist_ok=True)
    for gpu in ids:
        path = os.path.join(lock_dir, f"gpu{gpu}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return gpu, fd
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("gpu_slot.py: expected `-- COMMAND ...` after the options", file=sys.stderr)
        return 2
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(prog="gpu_slot.py", description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=0, help="number of GPU IDs (0 = nvidia-smi)")
    parser.add_argument(
        "--lock-dir",
        default=os.environ.get("LF2_GPU_LOCK_DIR", "/tmp/lf2-gpu-locks"),
        help="folder of the lock files; every job on this machine must use the same one",
    )
    parser.add_argument(
        "--wait", type=float, default=0.0, help="give up after this many seconds (0 = never)"
    )
    parser.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args(opts)
    if not command:
        parser.error("no command after --")

    ids = visible_ids(args.gpus)
    if not ids:
        print("gpu_slot.py: no GPU found; running without CUDA_VISIBLE_DEVICES", file=sys.stderr)
        os.execvp(command[0], command)
    start = time.monotonic()
    while (claim := try_claim(ids, args.lock_dir)) is None:
        if args.wait and time.monotonic() - start > args.wait:
            print(f"gpu_slot.py: all GPUs {ids} stayed busy for {args.wait:.0f} s", file=sys.stderr)
            return 75  # EX_TEMPFAIL
        time.sleep(args.poll)
    gpu, fd = claim
    os.set_inheritable(fd, True)  # the exec'd command keeps holding the lock
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    print(f"gpu_slot.py: CUDA_VISIBLE_DEVICES={gpu}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
