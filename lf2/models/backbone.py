"""ResNet backbones without avgpool/fc, with a configurable last stride.

The trunks are lf2.models.resnet's (torchvision's network, names and initialisation, built
without importing torchvision).

Weights are never downloaded: ``pretrained=True`` reads torchvision's ImageNet file from the
torch hub cache and fails with the exact path and URL when it is missing, so an offline
machine gives a clear instruction instead of a network error.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lf2.errors import CheckpointError, LF2Error
from lf2.models.resnet import ResNetTrunk

#: arch -> torchvision's ImageNet weights URL (IMAGENET1K_V1), whose file name is its cache name
ARCHS: dict[str, str] = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
}


def imagenet_weights_path(arch: str) -> Path:
    """Where torchvision caches the ImageNet weights of ``arch`` (it may not exist)."""
    url = _arch_entry(arch)
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def build_backbone(
    arch: str, pretrained: bool | str, last_stride: int = 1
) -> tuple[nn.Module, int]:
    """Build a ResNet trunk; returns ``(module, out_channels)``.

    ``last_stride=1`` keeps layer4 at 1/16 of the input (16x8 for 256x128), as in the paper;
    ``2`` is torchvision's 1/32. ``pretrained``: False (random init), True (torchvision's
    ImageNet IMAGENET1K_V1 file from the hub cache) or a path to a local state dict.
    """
    url = _arch_entry(arch)
    if last_stride not in (1, 2):
        raise LF2Error(f"model.last_stride must be 1 or 2, got {last_stride!r}")
    backbone = ResNetTrunk(arch)
    channels = backbone.out_channels
    if last_stride == 1:
        _set_last_stride_one(backbone.layer4)
    if pretrained is True:
        path = imagenet_weights_path(arch)
        if not path.is_file():
            raise CheckpointError(
                f"ImageNet weights for {arch} not found at {path}; this machine does not "
                f"download them. Get {url} and put the file at {path} "
                f"(or set model.pretrained to false or to a local .pth path)."
            )
        _load_weights(backbone, path)
    elif isinstance(pretrained, str | Path) and not isinstance(pretrained, bool):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise CheckpointError(
                f"model.pretrained: weights file {path} does not exist "
                f"(expected a state dict of a torchvision {arch})"
            )
        _load_weights(backbone, path)
    elif pretrained is not False:
        raise LF2Error(
            f"model.pretrained must be false, true or a path to a .pth file, got {pretrained!r}"
        )
    return backbone, channels


def _arch_entry(arch: str) -> str:
    if arch not in ARCHS:
        raise LF2Error(f"model.arch {arch!r} is not supported; allowed: {', '.join(ARCHS)}")
    return ARCHS[arch]


def _set_last_stride_one(layer4: nn.Sequential) -> None:
    """Make the first block of layer4 keep the spatial size (conv and shortcut)."""
    block = layer4[0]
    # Bottleneck (torchvision v1.5) strides in conv2; BasicBlock in conv1.
    conv = block.conv2 if hasattr(block, "conv3") else block.conv1
    conv.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


def _load_weights(backbone: nn.Module, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a torch file
        raise CheckpointError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"weights file {path} does not hold a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):  # a whole ReIDNet: keep its trunk
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"weights file {path} does not match the backbone: "
            f"{len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}"
        )
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(
            f"weights file {path}: shape of {k} is {tuple(state[k].shape)}, "
            f"expected {tuple(own[k].shape)} ({len(bad)} mismatched tensors)"
        )
    backbone.load_state_dict(state, strict=True)
