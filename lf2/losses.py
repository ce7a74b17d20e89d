"""Losses of LF² (Eq. 1-3 and 6-9): cross-entropy, batch-hard triplet, softmax-triplet.

The paper's Eq. 2 and 9 carry a stray leading minus sign; the triplet loss here is the usual
non-negative hinge mean(relu(d_ap - d_an + m)). Distances are computed in float32 whatever
the input precision (bf16 distances are too coarse for hard mining).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lf2.errors import LF2Error

TRIPLET_KINDS = ("hard", "softmax")


def cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy (Eq. 1 / L_cls^t); ``label_smoothing`` eps as in Szegedy et al.

    Targets must be class indices >= 0 (drop DBSCAN outliers, label -1, before the loss).
    """
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


def pairwise_distance(x: Tensor) -> Tensor:
    """(B,D) -> (B,B) Euclidean distances, in float32.

    The squared distance is clamped at 1e-12 before the square root, so identical vectors
    (the diagonal, duplicate images) give a finite gradient instead of NaN.
    """
    x = x.float()
    sq = x.pow(2).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()


def hardest_pairs(dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-hard mining: per anchor the farthest positive (not itself) and nearest negative.

    Returns ``(d_ap, d_an, valid)``, each (B,). Anchors without a positive or without a
    negative in the batch are invalid; their ``d_ap``/``d_an`` are 0 and must be ignored.
    Samples labelled < 0 (DBSCAN outliers) take no part: they are neither anchors, nor
    positives, nor negatives, exactly as if they had been dropped from the batch. Masking
    instead of dropping keeps the shapes fixed, so no step waits for the GPU to count them.
    """
    labels = labels.view(-1)
    member = labels >= 0
    both = member[:, None] & member[None, :]
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=dist.device)
    pos = same & ~eye & both
    neg = ~same & both
    valid = pos.any(dim=1) & neg.any(dim=1)
    zero = dist.new_zeros(())
    d_ap = torch.where(pos, dist, float("-inf")).amax(dim=1)
    d_an = torch.where(neg, dist, float("inf")).amin(dim=1)
    return torch.where(valid, d_ap, zero), torch.where(valid, d_an, zero), valid


def batch_hard_triplet(feats: Tensor, labels: Tensor, margin: float = 0.3) -> Tensor:
    """Eq. 2 / 9: mean over valid anchors of relu(d_ap - d_an + margin); 0 if none is valid."""
    d_ap, d_an, valid = hardest_pairs(pairwise_distance(feats), labels)
    return _masked_mean(F.relu(d_ap - d_an + margin), valid)


def softmax_triplet(feats: Tensor, labels: Tensor) -> Tensor:
    """Eq. 6-7: mean over valid anchors of -log(e^{d_an} / (e^{d_ap} + e^{d_an})).

    Computed as softplus(d_ap - d_an), which is the same quantity without overflow.
    """
    d_ap, d_an, valid = hardest_pairs(pairwise_distance(feats), labels)
    return _masked_mean(F.softplus(d_ap - d_an), valid)


def triplet_loss(kind: str, feats: Tensor, labels: Tensor, margin: float = 0.3) -> Tensor:
    """``hard`` (margin hinge, the paper's global term) or ``softmax`` (released code's)."""
    if kind == "hard":
        return batch_hard_triplet(feats, labels, margin)
    if kind == "softmax":
        return softmax_triplet(feats, labels)
    raise LF2Error(
        f"global_triplet {kind!r} is not supported; allowed: {', '.join(TRIPLET_KINDS)}"
    )


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    # Multiplying by the mask (rather than indexing) keeps a graph to the inputs even when
    # no anchor is valid, so ``loss.backward()`` works and yields zero gradients.
    count = valid.sum()
    return (values * valid).sum() / count.clamp(min=1)
