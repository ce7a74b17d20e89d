"""The Fusion Module FM (Eq. 5, Fig. 3): a part-conditioned channel attention on the global map.

For part j with pooled student feature F = F^{P_j} (B,C) and teacher map Phi0 (B,C,H,W):

- ``paper``     Z = sigmoid(MLP(F)) * F        (Eq. 5 third line, Fig. 3 red residual line)
- ``released``  same equation, but FM is frozen at its random initialisation (no gradient),
                which is what the authors' released code amounts to
- ``eq5_line2`` Z = sigmoid(MLP(F) * F)

and the fused map is Phi^{P_j} = Z * Phi0 (channel-wise, broadcast over H x W).
MLP = Linear(C, C/r, bias=False) -> ReLU -> Linear(C/r, C, bias=False): CBAM's shared MLP
written with Linear layers on pooled vectors (equivalent to its bias-free 1x1 convs).
"""

from __future__ import annotations

from torch import Tensor, nn

from lf2.errors import LF2Error

FM_MODES = ("paper", "released", "eq5_line2")


class FusionModule(nn.Module):
    """One FM (one part). ``trainable`` is False in ``released`` mode."""

    def __init__(self, channels: int, reduction: int = 4, mode: str = "paper") -> None:
        super().__init__()
        if mode not in FM_MODES:
            raise LF2Error(
                f"model.fm_mode {mode!r} is not supported; allowed: {', '.join(FM_MODES)}"
            )
        if not isinstance(reduction, int) or reduction < 1 or reduction > channels:
            raise LF2Error(
                f"model.fm_reduction must be an integer in [1, {channels}], got {reduction!r}"
            )
        self.channels = channels
        self.reduction = reduction
        self.mode = mode
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
        )
        if mode == "released":
            self.requires_grad_(False)

    @property
    def trainable(self) -> bool:
        return self.mode != "released"

    def attention(self, part_feat: Tensor) -> Tensor:
        """Z^{P_j} (B,C) from the pooled part feature F^{P_j} (B,C)."""
        m = self.mlp(part_feat)
        if self.mode == "eq5_line2":
            return (m * part_feat).sigmoid()
        return m.sigmoid() * part_feat

    def forward(self, part_feat: Tensor, global_feat: Tensor) -> Tensor:
        """Fused feature phi^{P_j} = Z * pool(Phi0), computed on the POOLED global feature.

        pool(Z * Phi0) == Z * pool(Phi0) because Z is constant over H x W: exactly for
        average pooling, and for avg+max too because Z >= 0 (max commutes with a non-negative
        scale). Z >= 0 holds in every mode: ``eq5_line2`` is a sigmoid, and ``paper`` /
        ``released`` multiply a sigmoid by F, the pooling of a post-ReLU map (F >= 0).
        """
        return self.attention(part_feat) * global_feat

    def fuse_map(self, part_feat: Tensor, global_map: Tensor) -> Tensor:
        """The fused map Phi^{P_j} = Z * Phi0, (B,C,H,W): for Grad-CAM style figures."""
        z = self.attention(part_feat)
        return z[:, :, None, None] * global_map


class FusionHead(nn.ModuleList):
    """K Fusion Modules, one per part, each with its own MLP (index it like a list)."""

    def __init__(
        self, channels: int, num_parts: int, reduction: int = 4, mode: str = "paper"
    ) -> None:
        if not isinstance(num_parts, int) or num_parts < 1:
            raise LF2Error(f"model.num_parts must be a positive integer, got {num_parts!r}")
        super().__init__(FusionModule(channels, reduction, mode) for _ in range(num_parts))
        self.mode = mode

    @property
    def trainable(self) -> bool:
        return self.mode != "released"

    def forward(self, part_feats: list[Tensor], global_feat: Tensor) -> list[Tensor]:
        """K fused features phi^{P_j} (B,C) from K part features and one global feature."""
        if len(part_feats) != len(self):
            raise LF2Error(f"FusionHead has {len(self)} modules but got {len(part_feats)} parts")
        return [fm(p, global_feat) for fm, p in zip(self, part_feats, strict=True)]

    def config(self) -> dict[str, int | str]:
        """Constructor arguments, to rebuild the head from a checkpoint."""
        fm = self[0]
        return {
            "channels": fm.channels,
            "num_parts": len(self),
            "reduction": fm.reduction,
            "mode": self.mode,
        }
