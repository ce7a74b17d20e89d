"""Fusion Module (Eq. 5): values per mode on hand-made tensors, gradient flow, map fusion."""

from __future__ import annotations

import math

import pytest
import torch

from lf2.errors import LF2Error
from lf2.losses import softmax_triplet
from lf2.models import FusionHead, FusionModule, ReIDNet
from lf2.models.net import pool_map

# C = 2, r = 2 -> hidden 1. W1 = [[1, -1]], W2 = [[2], [-1]].
W1 = torch.tensor([[1.0, -1.0]])
W2 = torch.tensor([[2.0], [-1.0]])
F_PART = torch.tensor([[3.0, 1.0], [0.5, 2.0]])  # B = 2
G = torch.tensor([[1.0, 2.0], [4.0, -1.0]])


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _fm(mode: str) -> FusionModule:
    fm = FusionModule(2, reduction=2, mode=mode)
    with torch.no_grad():
        fm.mlp[0].weight.copy_(W1)
        fm.mlp[2].weight.copy_(W2)
    return fm


def _mlp_by_hand() -> list[list[float]]:
    # row 0: W1 f = 3 - 1 = 2 -> relu 2 -> W2 -> [4, -2]
    # row 1: W1 f = 0.5 - 2 = -1.5 -> relu 0 -> [0, 0]
    return [[4.0, -2.0], [0.0, 0.0]]


@pytest.mark.parametrize("mode", ["paper", "released"])
def test_paper_equation_by_hand(mode: str) -> None:
    m = _mlp_by_hand()
    z = [[_sig(m[b][c]) * F_PART[b, c].item() for c in range(2)] for b in range(2)]
    fm = _fm(mode)
    assert torch.allclose(fm.attention(F_PART), torch.tensor(z), atol=1e-6)
    fused = [[z[b][c] * G[b, c].item() for c in range(2)] for b in range(2)]
    assert torch.allclose(fm(F_PART, G), torch.tensor(fused), atol=1e-6)
    # numbers spelled out for row 0: sigmoid(4)*3, sigmoid(-2)*1
    assert fm.attention(F_PART)[0, 0].item() == pytest.approx(3 * 0.98201379, abs=1e-6)


def test_eq5_line2_equation_by_hand() -> None:
    m = _mlp_by_hand()
    z = [[_sig(m[b][c] * F_PART[b, c].item()) for c in range(2)] for b in range(2)]
    fm = _fm("eq5_line2")
    assert torch.allclose(fm.attention(F_PART), torch.tensor(z), atol=1e-6)
    # row 1: MLP is 0 -> sigmoid(0) = 0.5 everywhere
    assert torch.allclose(fm.attention(F_PART)[1], torch.tensor([0.5, 0.5]))
    assert torch.allclose(fm(F_PART, G), torch.tensor(z) * G, atol=1e-6)


@pytest.mark.parametrize("pooling", ["avg", "avg+max"])
@pytest.mark.parametrize("mode", ["paper", "eq5_line2"])
def test_pooling_the_fused_map_equals_fusing_the_pooled_feature(mode: str, pooling: str) -> None:
    torch.manual_seed(0)
    fm = FusionModule(8, reduction=4, mode=mode)
    part = torch.rand(3, 8)  # non-negative like a pooled post-ReLU map
    gmap = torch.relu(torch.randn(3, 8, 4, 2))
    fused_map = fm.fuse_map(part, gmap)
    assert fused_map.shape == gmap.shape
    assert torch.allclose(
        pool_map(fused_map, pooling), fm(part, pool_map(gmap, pooling)), atol=1e-6
    )


def test_mlp_shapes_and_no_bias() -> None:
    fm = FusionModule(16, reduction=4)
    assert fm.mlp[0].weight.shape == (4, 16) and fm.mlp[0].bias is None
    assert fm.mlp[2].weight.shape == (16, 4) and fm.mlp[2].bias is None


def test_unknown_mode_and_bad_reduction() -> None:
    with pytest.raises(LF2Error, match="paper, released, eq5_line2"):
        FusionModule(8, mode="cbam")
    with pytest.raises(LF2Error, match="fm_reduction"):
        FusionModule(8, reduction=0)
    with pytest.raises(LF2Error, match="paper, released, eq5_line2"):
        FusionHead(8, 2, mode="nope")


@pytest.fixture(scope="module")
def nets() -> tuple[ReIDNet, ReIDNet]:
    torch.manual_seed(0)
    student = ReIDNet(arch="resnet18", num_parts=2).train()
    teacher = ReIDNet(arch="resnet18", num_parts=2).eval()  # parameters still require grad
    return student, teacher


def _fm_loss_grads(
    mode: str, nets: tuple[ReIDNet, ReIDNet]
) -> tuple[FusionHead, torch.Tensor, torch.Tensor]:
    """Student parts + teacher global (detached) -> FM -> softmax triplet; return grads."""
    student, teacher = nets
    student.zero_grad(set_to_none=True)
    teacher.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    head = FusionHead(512, 2, reduction=4, mode=mode)
    x = torch.randn(8, 3, 32, 16)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    parts = student.forward_train(x).part_feats
    teacher_global = teacher.pool(teacher.feature_map(x))
    assert teacher_global.requires_grad
    fused = head(parts, teacher_global.detach())
    loss = sum(softmax_triplet(f, labels) for f in fused)
    loss.backward()
    return head, student.backbone.layer4[1].conv2.weight.grad, teacher.backbone.conv1.weight.grad


@pytest.mark.parametrize("mode", ["paper", "eq5_line2"])
def test_gradient_reaches_fm_and_student_not_teacher(mode: str, nets) -> None:
    head, student_grad, teacher_grad = _fm_loss_grads(mode, nets)
    assert head.trainable
    for fm in head:
        for p in fm.parameters():
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0
    assert student_grad is not None and student_grad.abs().sum() > 0
    assert teacher_grad is None


def test_released_mode_gets_no_gradient() -> None:
    head = FusionHead(16, 2, mode="released")
    assert not head.trainable and not head[0].trainable
    assert all(not p.requires_grad for p in head.parameters())
    part = torch.rand(4, 16, requires_grad=True)
    out = head([part, part], torch.rand(4, 16))
    # a loss through a released FM still reaches the input but never the FM weights
    sum(o.sum() for o in out).backward()
    assert part.grad is not None
    assert all(p.grad is None for p in head.parameters())


def test_head_forward_and_config() -> None:
    torch.manual_seed(0)
    head = FusionHead(8, 3, reduction=2, mode="paper")
    assert len(head) == 3 and isinstance(head[2], FusionModule)
    parts = [torch.rand(2, 8) for _ in range(3)]
    g = torch.rand(2, 8)
    out = head(parts, g)
    assert len(out) == 3
    for fm, p, o in zip(head, parts, out, strict=True):
        assert torch.allclose(o, fm.attention(p) * g)
    assert head.config() == {"channels": 8, "num_parts": 3, "reduction": 2, "mode": "paper"}
    with pytest.raises(LF2Error, match="3 modules but got 2"):
        head(parts[:2], g)
    # each part has its own MLP
    assert head[0].mlp[0].weight.data_ptr() != head[1].mlp[0].weight.data_ptr()
