"""Backbone and ReIDNet: shapes, parts, heads, classifier, config, weight loading errors."""

from __future__ import annotations

import pytest
import torch

from lf2.errors import LF2Error
from lf2.models import ReIDNet, TrainOutputs, build_backbone, imagenet_weights_path
from lf2.models.net import pool_map


@pytest.fixture(scope="module")
def net18() -> ReIDNet:
    torch.manual_seed(0)
    return ReIDNet(arch="resnet18", num_parts=2, num_classes=5)


def test_backbone_resnet18_last_stride_1_gives_16x8() -> None:
    bb, c = build_backbone("resnet18", False, last_stride=1)
    assert c == 512
    with torch.no_grad():
        out = bb.eval()(torch.randn(1, 3, 256, 128))
    assert out.shape == (1, 512, 16, 8)


def test_backbone_last_stride_2_halves_the_map() -> None:
    bb, _ = build_backbone("resnet18", False, last_stride=2)
    with torch.no_grad():
        out = bb.eval()(torch.randn(1, 3, 256, 128))
    assert out.shape == (1, 512, 8, 4)


def test_backbone_resnet50_shape() -> None:
    bb, c = build_backbone("resnet50", False, last_stride=1)
    assert c == 2048
    with torch.no_grad():
        out = bb.eval()(torch.randn(1, 3, 256, 128))
    assert out.shape == (1, 2048, 16, 8)


def test_unknown_arch_lists_allowed() -> None:
    with pytest.raises(LF2Error, match="resnet18, resnet34, resnet50, resnet101"):
        build_backbone("vgg16", False)


def test_pretrained_true_missing_names_cache_path_and_url(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert imagenet_weights_path("resnet18") == expected
    with pytest.raises(LF2Error) as exc:
        build_backbone("resnet18", True)
    msg = str(exc.value)
    assert str(expected) in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg


def test_pretrained_true_loads_file_from_cache(monkeypatch, tmp_path) -> None:
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    ref = torchvision.models.resnet18(weights=None)
    path = imagenet_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), path)  # includes fc.*, which must be ignored
    bb, _ = build_backbone("resnet18", True)
    assert torch.equal(bb.conv1.weight, ref.conv1.weight)
    assert torch.equal(bb.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)


def test_pretrained_path_missing_and_mismatched(tmp_path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(LF2Error, match="nope.pth"):
        build_backbone("resnet18", str(missing))
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(LF2Error, match="bad.pth.*missing keys"):
        build_backbone("resnet18", str(bad))
    # right keys, wrong shapes (a resnet34 file for a resnet18 has extra keys; use shapes)
    bb, _ = build_backbone("resnet18", False)
    state = {k: v.clone() for k, v in bb.state_dict().items()}
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    shaped = tmp_path / "shape.pth"
    torch.save(state, shaped)
    with pytest.raises(LF2Error, match="conv1.weight"):
        build_backbone("resnet18", str(shaped))


def test_pretrained_path_loads_own_state(tmp_path) -> None:
    torch.manual_seed(1)
    bb, _ = build_backbone("resnet18", False)
    path = tmp_path / "w.pth"
    torch.save({"module." + k: v for k, v in bb.state_dict().items()}, path)
    bb2, _ = build_backbone("resnet18", str(path))
    assert torch.equal(bb2.layer3[0].conv1.weight, bb.layer3[0].conv1.weight)
    # a whole ReIDNet state dict: its backbone.* part is used, heads are ignored
    net = ReIDNet(arch="resnet18", num_classes=3)
    whole = tmp_path / "net.pth"
    torch.save(net.state_dict(), whole)
    bb3, _ = build_backbone("resnet18", str(whole))
    assert torch.equal(bb3.conv1.weight, net.backbone.conv1.weight)


def test_forward_train_shapes(net18: ReIDNet) -> None:
    net18.train()
    out = net18.forward_train(torch.randn(4, 3, 64, 32))
    assert isinstance(out, TrainOutputs)
    assert out.feature_map.shape == (4, 512, 4, 2)
    assert out.global_feat.shape == out.global_bn.shape == (4, 512)
    assert out.logits is not None and out.logits.shape == (4, 5)
    assert len(out.part_feats) == len(out.expert_feats) == 2
    assert all(p.shape == (4, 512) for p in out.part_feats + out.expert_feats)


def test_parts_are_pooled_horizontal_stripes(net18: ReIDNet) -> None:
    fmap = torch.arange(2 * 3 * 4 * 2, dtype=torch.float32).reshape(2, 3, 4, 2)
    stripes = net18.split_parts(fmap)
    assert [s.shape for s in stripes] == [(2, 3, 2, 2), (2, 3, 2, 2)]
    assert torch.equal(stripes[0], fmap[:, :, :2]) and torch.equal(stripes[1], fmap[:, :, 2:])
    parts = net18.part_features(fmap)
    assert torch.allclose(parts[0], fmap[:, :, :2].mean(dim=(2, 3)))
    # pooled global = mean of the pooled stripes for average pooling
    assert torch.allclose(net18.pool(fmap), (parts[0] + parts[1]) / 2)


def test_k_not_dividing_h_raises() -> None:
    net = ReIDNet(arch="resnet18", num_parts=3)
    with pytest.raises(LF2Error, match=r"K=3.*H=4"):
        net.split_parts(torch.zeros(1, 512, 4, 2))


def test_avg_max_pooling_sums() -> None:
    fmap = torch.tensor([[[[1.0, 3.0], [0.0, 4.0]]]])
    assert torch.allclose(pool_map(fmap, "avg"), torch.tensor([[2.0]]))
    assert torch.allclose(pool_map(fmap, "avg+max"), torch.tensor([[6.0]]))
    with pytest.raises(LF2Error, match="avg, avg\\+max"):
        pool_map(fmap, "gem")


def test_test_features_pooled_and_heads(net18: ReIDNet) -> None:
    net18.eval()
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        emb = net18(x)
        fmap = net18.feature_map(x)
        g, parts = net18.global_and_parts(x)
    assert emb.shape == (3, 3 * 512) == (3, net18.embedding_dim)
    assert torch.allclose(emb, torch.cat([net18.pool(fmap), *net18.part_features(fmap)], 1))
    assert torch.allclose(g, emb[:, :512]) and torch.allclose(parts[1], emb[:, 1024:])
    heads = ReIDNet(arch="resnet18", test_feature="heads").eval()
    heads.load_state_dict(net18.state_dict(), strict=False)
    with torch.no_grad():
        h = heads(x)
        expected = torch.cat(
            [heads.bnneck(g), *(e(p) for e, p in zip(heads.experts, parts, strict=True))], 1
        )
    assert torch.allclose(h, expected, atol=1e-5)


def test_bnneck_bias_frozen_classifier_bias_free(net18: ReIDNet) -> None:
    assert not net18.bnneck.bias.requires_grad
    assert net18.bnneck.weight.requires_grad
    assert net18.classifier is not None and net18.classifier.bias is None
    assert all(e[0].bias is None and e[0].weight.shape == (512, 512) for e in net18.experts)


def test_reset_classifier_with_weight_and_zero() -> None:
    net = ReIDNet(arch="resnet18", num_classes=0)
    net.eval()
    with torch.no_grad():
        assert net.forward_train(torch.randn(2, 3, 64, 32)).logits is None
    w = torch.nn.functional.normalize(torch.randn(7, 512), dim=1)
    net.reset_classifier(7, w)
    assert net.num_classes == 7 and torch.equal(net.classifier.weight.data, w)
    assert net.config()["num_classes"] == 7
    with pytest.raises(LF2Error, match=r"\(7, 512\)"):
        net.reset_classifier(7, torch.zeros(6, 512))
    net.reset_classifier(0)
    assert net.classifier is None


def test_config_roundtrip(net18: ReIDNet) -> None:
    cfg = net18.config()
    assert cfg == {
        "arch": "resnet18",
        "last_stride": 1,
        "num_parts": 2,
        "pooling": "avg",
        "test_feature": "pooled",
        "num_classes": 5,
        "expert": "fc_bn",
    }
    clone = ReIDNet.from_config(cfg)
    clone.load_state_dict(net18.state_dict())  # same keys and shapes
    with pytest.raises(LF2Error, match="unknown keys"):
        ReIDNet.from_config({**cfg, "depth": 3})


def test_bad_options_raise() -> None:
    with pytest.raises(LF2Error, match="pooling"):
        ReIDNet(arch="resnet18", pooling="gem")
    with pytest.raises(LF2Error, match="test_feature"):
        ReIDNet(arch="resnet18", test_feature="global")
    with pytest.raises(LF2Error, match="num_parts"):
        ReIDNet(arch="resnet18", num_parts=0)


def test_channels_last_matches(net18: ReIDNet) -> None:
    net18.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        ref = net18(x)
        net_cl = net18.to(memory_format=torch.channels_last)
        out = net_cl(x.contiguous(memory_format=torch.channels_last))
        net18.to(memory_format=torch.contiguous_format)
    assert torch.allclose(ref, out, atol=1e-4)


def test_gradients_reach_backbone_experts_and_classifier(net18: ReIDNet) -> None:
    net18.train()
    net18.zero_grad()
    out = net18.forward_train(torch.randn(4, 3, 64, 32))
    loss = out.logits.sum() + sum(e.pow(2).sum() for e in out.expert_feats)
    loss.backward()
    assert net18.backbone.conv1.weight.grad is not None
    assert net18.experts[1][0].weight.grad.abs().sum() > 0
    assert net18.classifier.weight.grad.abs().sum() > 0
    assert net18.bnneck.bias.grad is None
