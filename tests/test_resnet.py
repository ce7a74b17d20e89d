"""lf2's own ResNet trunks against torchvision's: same weights for a seed, same outputs and
gradients (tests/test_startup_imports.py: the DAG's jobs never import torchvision)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm

import lf2
from lf2.models.backbone import ARCHS, build_backbone
from lf2.models.resnet import LAYOUTS, ResNetTrunk


def _torchvision_trunk_state(arch: str) -> dict[str, torch.Tensor]:
    net = getattr(tvm, arch)(weights=None)
    return {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}


@pytest.mark.parametrize("arch", sorted(LAYOUTS))
def test_a_seed_gives_torchvisions_weights_bit_for_bit(arch: str) -> None:
    torch.manual_seed(7)
    ours = ResNetTrunk(arch).state_dict()
    torch.manual_seed(7)
    theirs = _torchvision_trunk_state(arch)
    assert list(ours) == list(theirs)  # same names in the same order
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    # and the RNG is left where torchvision leaves it (the next draws agree too)
    torch.manual_seed(7)
    ResNetTrunk(arch)
    after_ours = torch.rand(3)
    torch.manual_seed(7)
    getattr(tvm, arch)(weights=None)
    assert torch.equal(after_ours, torch.rand(3))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_outputs_and_gradients_equal_torchvisions(arch: str) -> None:
    torch.manual_seed(3)
    ours = ResNetTrunk(arch)
    tv = getattr(tvm, arch)(weights=None)
    tv.load_state_dict({**tv.state_dict(), **ours.state_dict()})
    x = torch.randn(4, 3, 64, 32)

    def tv_trunk(inp: torch.Tensor) -> torch.Tensor:
        h = tv.maxpool(tv.relu(tv.bn1(tv.conv1(inp))))
        return tv.layer4(tv.layer3(tv.layer2(tv.layer1(h))))

    out_ours, out_tv = ours(x), tv_trunk(x)  # train mode: batch statistics
    assert out_ours.shape == (4, ours.out_channels, 2, 1)
    assert torch.equal(out_ours, out_tv)
    out_ours.square().sum().backward()
    out_tv.square().sum().backward()
    tv_params = dict(tv.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.equal(p.grad, tv_params[name].grad), name
    # running statistics moved the same way
    tv_buffers = dict(tv.named_buffers())
    for name, b in ours.named_buffers():
        assert torch.equal(b, tv_buffers[name]), name


def test_every_supported_arch_has_a_layout_and_a_weights_url() -> None:
    schema = json.loads((Path(lf2.__file__).parent / "schema" / "params.schema.json").read_text())
    arch_enum = schema["properties"]["model"]["properties"]["arch"]["enum"]
    assert set(ARCHS) == set(LAYOUTS) == set(arch_enum)
    for arch in LAYOUTS:
        _, channels = build_backbone(arch, False, last_stride=2)
        assert channels == (512 if LAYOUTS[arch][0] == "basic" else 2048)
