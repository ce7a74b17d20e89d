"""What a DAG job imports before its first step. Every job is a process, so a heavy import
is paid ~110 times by the default suite: torchvision and torch._inductor each pull in
torch._dynamo (~2 s of CPU each on the 2-core EPYC), scikit-learn ~2 s
(docs/performance.md). They stay out of the default training and evaluation paths."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torchvision", "sklearn", "scipy", "torch._inductor", "torch._dynamo")


def _imported_after(code: str) -> dict:
    probe = code + f"\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_and_evaluation_start_up_skips_heavy_imports() -> None:
    code = """
import numpy as np, torch
import lf2.commands.finetune, lf2.commands.pretrain, lf2.commands.evaluate
import lf2.train.finetune, lf2.train.pretrain, lf2.eval.features
from lf2.models import build_backbone
from lf2.train.runtime import seed_everything
from lf2.train.finetune import cluster_record
seed_everything(0)
assert torch.are_deterministic_algorithms_enabled()
assert torch.is_deterministic_algorithms_warn_only_enabled()
build_backbone("resnet18", False)
cluster_record(["global"], [np.array([0, 1, 1, -1])], np.array([0, 1, 1, 2]))
from PIL import Image
from lf2.data.transforms import build_test_transform
build_test_transform(32, 16)(Image.new("RGB", (20, 40)))  # the evaluation jobs' transform
from lf2.train.common import make_adam
net = torch.nn.Linear(3, 2)
opt = make_adam([net], 1e-3, 5e-4, impl="fused")  # params adam: fused, the default
net(torch.randn(4, 3)).sum().backward()
opt.step()
"""
    assert _imported_after(code) == {m: False for m in HEAVY}


def test_compiling_sets_inductors_deterministic_flag_too() -> None:
    code = """
import torch
from lf2.train.runtime import compile_backbones, seed_everything
seed_everything(0)
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(2, 2)
compile_backbones([M()], "default")
import torch._inductor.config as c
assert c.deterministic is True
"""
    assert _imported_after(code)["torch._inductor"] is True
