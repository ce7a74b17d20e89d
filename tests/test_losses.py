"""Losses on hand-made batches whose values are worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from lf2.errors import LF2Error
from lf2.losses import (
    batch_hard_triplet,
    cross_entropy,
    hardest_pairs,
    pairwise_distance,
    softmax_triplet,
    triplet_loss,
)

# Four 2-D points, two identities:
#   p0=(0,0) p1=(3,0) | p2=(0,4) p3=(0,5)
# d01=3 d02=4 d03=5 d12=5 d13=sqrt(34) d23=1
X = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, 5.0]])
Y = torch.tensor([0, 0, 1, 1])
# hardest positive / nearest negative per anchor:
#   a0: ap=3 an=min(4,5)=4 | a1: ap=3 an=min(5,5.83)=5 | a2: ap=1 an=4 | a3: ap=1 an=5
D_AP = [3.0, 3.0, 1.0, 1.0]
D_AN = [4.0, 5.0, 4.0, 5.0]


def test_pairwise_distance_values() -> None:
    d = pairwise_distance(X)
    expected = torch.tensor(
        [
            [0.0, 3.0, 4.0, 5.0],
            [3.0, 0.0, 5.0, math.sqrt(34)],
            [4.0, 5.0, 0.0, 1.0],
            [5.0, math.sqrt(34), 1.0, 0.0],
        ]
    )
    assert d.dtype == torch.float32
    assert torch.allclose(d, expected, atol=1e-5)


def test_pairwise_distance_gradient_finite_for_duplicates() -> None:
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], requires_grad=True)
    pairwise_distance(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_hardest_pairs_by_hand() -> None:
    d_ap, d_an, valid = hardest_pairs(pairwise_distance(X), Y)
    assert valid.all()
    assert torch.allclose(d_ap, torch.tensor(D_AP), atol=1e-5)
    assert torch.allclose(d_an, torch.tensor(D_AN), atol=1e-5)


def test_hardest_pairs_excludes_anchor_and_flags_invalid() -> None:
    # labels 0,0,1,2: anchors 2 and 3 have no positive in the batch
    d_ap, d_an, valid = hardest_pairs(pairwise_distance(X), torch.tensor([0, 0, 1, 2]))
    assert valid.tolist() == [True, True, False, False]
    assert d_ap[:2].tolist() == pytest.approx([3.0, 3.0], abs=1e-5)
    assert d_an[:2].tolist() == pytest.approx([4.0, 5.0], abs=1e-5)
    assert d_ap[2:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("margin", "expected"),
    [
        (0.3, 0.0),  # every d_ap - d_an + 0.3 < 0
        (1.5, 0.5 / 4),  # only a0: 3 - 4 + 1.5 = 0.5
        (2.5, (1.5 + 0.5) / 4),  # a0: 1.5, a1: 0.5, a2: -0.5, a3: -1.5
    ],
)
def test_batch_hard_triplet_by_hand(margin: float, expected: float) -> None:
    assert batch_hard_triplet(X, Y, margin).item() == pytest.approx(expected, abs=1e-5)


def test_batch_hard_triplet_averages_over_valid_anchors_only() -> None:
    # valid anchors a0 (3-4+2.5=1.5) and a1 (3-5+2.5=0.5): mean 1.0, not 2.0/4
    loss = batch_hard_triplet(X, torch.tensor([0, 0, 1, 2]), margin=2.5)
    assert loss.item() == pytest.approx(1.0, abs=1e-5)


def test_softmax_triplet_by_hand() -> None:
    # -log(e^an / (e^ap + e^an)) = log(1 + e^(ap - an)); ap - an = -1, -2, -3, -4
    expected = sum(math.log1p(math.exp(-k)) for k in (1, 2, 3, 4)) / 4  # 0.1267318...
    assert softmax_triplet(X, Y).item() == pytest.approx(expected, abs=1e-5)
    assert expected == pytest.approx(0.1267318, abs=1e-6)


def test_softmax_triplet_is_stable_for_large_distances() -> None:
    # scaling by 1000: ap - an = -1000, -2000 ... and for swapped labels +1000
    big = X * 1000.0
    assert softmax_triplet(big, Y).item() == pytest.approx(0.0, abs=1e-6)
    swapped = torch.tensor([0, 1, 0, 1])
    # a0: pos p2 (4000), neg min(p1 3000, p3 5000)=3000 -> softplus(1000) = 1000
    loss = softmax_triplet(big, swapped)
    assert torch.isfinite(loss)
    d_ap, d_an, _ = hardest_pairs(pairwise_distance(big), swapped)
    expected = torch.nn.functional.relu(d_ap - d_an).mean().item()  # softplus(z) ~ z for z >> 0
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("fn", [softmax_triplet, lambda f, y: batch_hard_triplet(f, y, 0.3)])
@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3]])
def test_no_valid_anchor_gives_zero_with_graph(fn, labels) -> None:
    feats = X.clone().requires_grad_(True)
    loss = fn(feats, torch.tensor(labels))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(feats.grad, torch.zeros_like(feats))


def test_triplet_gradient_pulls_positive_and_pushes_negative() -> None:
    feats = X.clone().requires_grad_(True)
    batch_hard_triplet(feats, Y, margin=1.5).backward()
    # only anchor a0 is active: d(p0,p1) down, d(p0,p2) up
    # d d01/d p1 = (p1 - p0)/3 = (1, 0) scaled by 1/4 (mean) -> gradient (0.25, 0)
    assert torch.allclose(feats.grad[1], torch.tensor([0.25, 0.0]), atol=1e-5)
    # -d d02/d p2 = -(p2 - p0)/4 = (0, -1) scaled by 1/4
    assert torch.allclose(feats.grad[2], torch.tensor([0.0, -0.25]), atol=1e-5)


def test_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = [1/4, 3/4]
    target = torch.tensor([1])
    assert cross_entropy(logits, target).item() == pytest.approx(-math.log(0.75), abs=1e-6)
    # (1 - eps) * -log(3/4) + eps * mean(-log(1/4), -log(3/4))
    eps = 0.1
    expected = (1 - eps) * -math.log(0.75) + eps * (-math.log(0.25) - math.log(0.75)) / 2
    assert cross_entropy(logits, target, label_smoothing=eps).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_triplet_loss_dispatch() -> None:
    assert triplet_loss("hard", X, Y, margin=1.5).item() == pytest.approx(0.125, abs=1e-5)
    assert triplet_loss("softmax", X, Y).item() == pytest.approx(
        softmax_triplet(X, Y).item(), abs=1e-7
    )
    with pytest.raises(LF2Error, match="hard, softmax"):
        triplet_loss("lifted", X, Y)


def test_bf16_inputs_are_computed_in_float32() -> None:
    d = pairwise_distance(X.to(torch.bfloat16))
    assert d.dtype == torch.float32
    assert torch.allclose(d[2, 3], torch.tensor(1.0), atol=1e-3)


def test_outliers_take_no_part_in_mining() -> None:
    # p4=(0,3.5) is an outlier (-1): as a negative it would be the nearest one for a0 (3.5 < 4)
    # and for p2, p3 it would be a positive if -1 were a class. It must change nothing.
    x = torch.cat([X, torch.tensor([[0.0, 3.5], [3.0, 0.1]])])
    y = torch.cat([Y, torch.tensor([-1, -1])])
    d_ap, d_an, valid = hardest_pairs(pairwise_distance(x), y)
    assert valid.tolist() == [True, True, True, True, False, False]
    assert torch.allclose(d_ap[:4], torch.tensor(D_AP), atol=1e-5)
    assert torch.allclose(d_an[:4], torch.tensor(D_AN), atol=1e-5)
    for loss in (softmax_triplet, lambda f, t: batch_hard_triplet(f, t, 0.3)):
        assert loss(x, y).item() == pytest.approx(loss(X, Y).item(), abs=1e-6)


def test_all_outliers_give_zero_loss_with_a_graph() -> None:
    x = X.clone().requires_grad_(True)
    loss = softmax_triplet(x, torch.full((4,), -1))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
