"""The LF² re-ID network: ResNet trunk, BNNeck global head, K horizontal parts with experts.

One class serves as student, teacher (a deep copy, see ``teacher.py``) and source model.
The Fusion Module lives apart (``fusion.py``): it is owned by the training loop, not copied
into the teacher, and discarded at test time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lf2.errors import LF2Error
from lf2.models.backbone import build_backbone

POOLINGS = ("avg", "avg+max")
TEST_FEATURES = ("pooled", "heads")
#: ``fc_bn``: FC(C -> C) -> BN on the pooled stripe (paper); ``concat_fc_bn``: FC(2C -> C) -> BN
#: on concat(avg, max) of the stripe (the released code's post-publication expert)
EXPERTS = ("fc_bn", "concat_fc_bn")


@dataclass
class TrainOutputs:
    """Everything one training forward produces (shapes for batch B, channels C, K parts)."""

    feature_map: Tensor  # (B,C,H,W)
    global_feat: Tensor  # (B,C) pooled map, before BNNeck (triplet input)
    global_bn: Tensor  # (B,C) after BNNeck
    logits: Tensor | None  # classifier(global_bn); None when num_classes == 0
    part_feats: list[Tensor]  # K x (B,C) pooled horizontal stripes F^{P_j}
    expert_feats: list[Tensor]  # K x (B,C) f^{P_j} = BN(FC(F^{P_j}))


def pool_map(fmap: Tensor, pooling: str) -> Tensor:
    """(B,C,H,W) -> (B,C): global average pooling, or average + max pooling (summed)."""
    avg = fmap.mean(dim=(2, 3))
    if pooling == "avg":
        return avg
    if pooling == "avg+max":
        return avg + fmap.amax(dim=(2, 3))
    raise LF2Error(f"model.pooling {pooling!r} is not supported; allowed: {', '.join(POOLINGS)}")


class ReIDNet(nn.Module):
    """ResNet + BNNeck + bias-free classifier + K part experts (FC -> BN).

    ``forward`` returns the test-time embedding (not L2-normalised):
    ``test_feature="pooled"`` -> cat[pool(map), pool(stripe_1..K)] ((K+1) x C, the paper);
    ``test_feature="heads"`` -> cat[BNNeck(global), expert_1..K] (the released code).
    """

    def __init__(
        self,
        *,
        arch: str = "resnet50",
        pretrained: bool | str = False,
        last_stride: int = 1,
        num_parts: int = 2,
        pooling: str = "avg",
        num_classes: int = 0,
        test_feature: str = "pooled",
        expert: str = "fc_bn",
    ) -> None:
        super().__init__()
        if expert not in EXPERTS:
            raise LF2Error(f"model.expert {expert!r} is not supported; allowed: {', '.join(EXPERTS)}")
        if pooling not in POOLINGS:
            raise LF2Error(
                f"model.pooling {pooling!r} is not supported; allowed: {', '.join(POOLINGS)}"
            )
        if test_feature not in TEST_FEATURES:
            raise LF2Error(
                f"model.test_feature {test_feature!r} is not supported; "
                f"allowed: {', '.join(TEST_FEATURES)}"
            )
        if not isinstance(num_parts, int) or num_parts < 1:
            raise LF2Error(f"model.num_parts must be a positive integer, got {num_parts!r}")
        if not isinstance(num_classes, int) or num_classes < 0:
            raise LF2Error(f"num_classes must be a non-negative integer, got {num_classes!r}")
        self.arch = arch
        self.last_stride = last_stride
        self.pooling = pooling
        self.test_feature = test_feature
        self.num_parts = num_parts
        self.expert = expert
        self.backbone, self.out_channels = build_backbone(arch, pretrained, last_stride)
        c = self.out_channels
        self.bnneck = nn.BatchNorm1d(c)
        self.bnneck.bias.requires_grad_(False)  # BNNeck: no shift, as in Luo et al.
        self.experts = nn.ModuleList(_expert(c, expert) for _ in range(num_parts))
        self.classifier: nn.Linear | None = None
        self.num_classes = 0
        self.reset_classifier(num_classes)

    # ----------------------------------------------------------------- pieces
    def feature_map(self, x: Tensor) -> Tensor:
        """(B,3,H,W) -> (B,C,H',W') final ResNet map (post-ReLU, hence non-negative)."""
        return self.backbone(x)

    def pool(self, fmap: Tensor) -> Tensor:
        """(B,C,H,W) -> (B,C) with this model's pooling."""
        return pool_map(fmap, self.pooling)

    def split_parts(self, fmap: Tensor) -> list[Tensor]:
        """K equal horizontal stripes (top to bottom) of a (B,C,H,W) map."""
        h = fmap.shape[2]
        if h % self.num_parts != 0:
            raise LF2Error(
                f"model.num_parts K={self.num_parts} does not divide the feature-map height "
                f"H={h}; choose K dividing H (input height / 16 with last stride 1)"
            )
        return list(fmap.split(h // self.num_parts, dim=2))

    def part_features(self, fmap: Tensor) -> list[Tensor]:
        """K pooled stripes F^{P_j}, each (B,C)."""
        return [self.pool(p) for p in self.split_parts(fmap)]

    # ---------------------------------------------------------------- forwards
    def forward_train(self, x: Tensor) -> TrainOutputs:
        fmap = self.feature_map(x)
        global_feat = self.pool(fmap)
        global_bn = self.bnneck(global_feat)
        logits = self.classifier(global_bn) if self.classifier is not None else None
        stripes = self.split_parts(fmap)
        parts = [self.pool(p) for p in stripes]
        return TrainOutputs(fmap, global_feat, global_bn, logits, parts, self._experts(stripes, parts))

    def forward(self, x: Tensor) -> Tensor:
        fmap = self.feature_map(x)
        global_feat = self.pool(fmap)
        stripes = self.split_parts(fmap)
        parts = [self.pool(p) for p in stripes]
        if self.test_feature == "pooled":
            return torch.cat([global_feat, *parts], dim=1)
        return torch.cat([self.bnneck(global_feat), *self._experts(stripes, parts)], dim=1)

    def _experts(self, stripes: list[Tensor], parts: list[Tensor]) -> list[Tensor]:
        """f^{P_j}: each expert on its pooled stripe, or on concat(avg, max) of the stripe."""
        if self.expert == "concat_fc_bn":
            parts = [torch.cat([s.mean(dim=(2, 3)), s.amax(dim=(2, 3))], dim=1) for s in stripes]
        return [e(p) for e, p in zip(self.experts, parts, strict=True)]

    def global_and_parts(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Pooled global feature and pooled parts, (B,C) and K x (B,C): clustering inputs."""
        fmap = self.feature_map(x)
        return self.pool(fmap), self.part_features(fmap)

    @property
    def embedding_dim(self) -> int:
        """Size of ``forward``'s output."""
        return (self.num_parts + 1) * self.out_channels

    # -------------------------------------------------------------- classifier
    def reset_classifier(self, num_classes: int, weight: Tensor | None = None) -> None:
        """Replace the classifier by a new bias-free Linear(C, num_classes).

        ``weight`` (num_classes, C), e.g. L2-normalised cluster centroids, is copied in when
        given; otherwise the weights are N(0, 0.001^2). ``num_classes=0`` removes it.
        """
        if not isinstance(num_classes, int) or num_classes < 0:
            raise LF2Error(f"num_classes must be a non-negative integer, got {num_classes!r}")
        ref = self.bnneck.weight
        self.num_classes = num_classes
        if num_classes == 0:
            if weight is not None:
                raise LF2Error("reset_classifier: a weight was given for num_classes=0")
            self.classifier = None
            return
        clf = nn.Linear(self.out_channels, num_classes, bias=False)
        clf = clf.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            if weight is None:
                nn.init.normal_(clf.weight, std=0.001)
            else:
                w = torch.as_tensor(weight)
                if tuple(w.shape) != (num_classes, self.out_channels):
                    raise LF2Error(
                        f"reset_classifier: weight has shape {tuple(w.shape)}, "
                        f"expected ({num_classes}, {self.out_channels})"
                    )
                clf.weight.copy_(w.to(device=ref.device, dtype=ref.dtype))
        self.classifier = clf

    # ------------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        """Constructor arguments (minus ``pretrained``) to rebuild this model from a checkpoint."""
        return {
            "arch": self.arch,
            "last_stride": self.last_stride,
            "num_parts": self.num_parts,
            "pooling": self.pooling,
            "test_feature": self.test_feature,
            "num_classes": self.num_classes,
            "expert": self.expert,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ReIDNet:
        """Rebuild a randomly initialised model from ``config()`` (then load a state dict)."""
        allowed = {"arch", "last_stride", "num_parts", "pooling", "test_feature", "num_classes", "expert"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise LF2Error(f"model config has unknown keys {unknown}; allowed: {sorted(allowed)}")
        return cls(pretrained=False, **config)


def _expert(channels: int, kind: str = "fc_bn") -> nn.Sequential:
    """Expert-j: FC(C->C) -> BN, or FC(2C->C) -> BN for ``concat_fc_bn``. The FC has no bias:
    the BN right after it absorbs any shift (the released FC's bias is such a shift)."""
    fan_in = 2 * channels if kind == "concat_fc_bn" else channels
    return nn.Sequential(nn.Linear(fan_in, channels, bias=False), nn.BatchNorm1d(channels))
