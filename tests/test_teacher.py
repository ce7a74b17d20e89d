"""Mean teacher (Eq. 4): EMA values by hand, warm-up, buffers, state dict, no-grad forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lf2.errors import LF2Error
from lf2.models import MeanTeacher, ReIDNet


def _tiny() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    return net


def _set(net: nn.Sequential, w: float, mean: float = 0.0, nbt: int = 0) -> None:
    with torch.no_grad():
        net[0].weight.fill_(w)
        net[1].running_mean.fill_(mean)
        net[1].num_batches_tracked.fill_(nbt)


def test_copy_is_frozen_and_in_eval_mode() -> None:
    student = _tiny().train()
    mt = MeanTeacher(student)
    assert mt.model is not student
    assert not mt.model.training
    assert all(not p.requires_grad for p in mt.model.parameters())
    assert all(p.requires_grad for p in student.parameters())
    assert torch.equal(mt.model[0].weight, student[0].weight)


def test_ema_values_after_one_and_three_updates() -> None:
    student = _tiny()
    mt = MeanTeacher(student, omega=0.9)
    _set(student, 2.0)
    mt.update(student)
    assert mt.step == 1
    assert mt.model[0].weight.item() == pytest.approx(0.9 * 1.0 + 0.1 * 2.0)  # 1.1
    _set(student, 3.0)
    mt.update(student)
    mt.update(student)
    # 1.1 -> 0.9*1.1 + 0.3 = 1.29 -> 0.9*1.29 + 0.3 = 1.461
    assert mt.model[0].weight.item() == pytest.approx(1.461, abs=1e-6)
    assert mt.step == 3
    assert student[0].weight.item() == 3.0  # the student is untouched


def test_warmup_weights() -> None:
    student = _tiny()
    mt = MeanTeacher(student, omega=0.6, warmup=True)
    assert mt.weight() == 0.0  # t=0: min(1 - 1/1, 0.6)
    _set(student, 5.0)
    mt.update(student)
    assert mt.model[0].weight.item() == pytest.approx(5.0)  # copy
    assert mt.weight() == pytest.approx(0.5)  # t=1: min(1 - 1/2, 0.6)
    _set(student, 7.0)
    mt.update(student)
    assert mt.model[0].weight.item() == pytest.approx(0.5 * 5.0 + 0.5 * 7.0)  # 6.0
    assert mt.weight() == pytest.approx(0.6)  # t=2: min(2/3, 0.6)
    _set(student, 1.0)
    mt.update(student)
    assert mt.model[0].weight.item() == pytest.approx(0.6 * 6.0 + 0.4 * 1.0)  # 4.0
    assert MeanTeacher(student, omega=0.999, warmup=False).weight() == 0.999


def test_buffers_copied_by_default() -> None:
    student = _tiny()
    mt = MeanTeacher(student, omega=0.9)
    _set(student, 1.0, mean=4.0, nbt=17)
    mt.update(student)
    assert mt.model[1].running_mean.item() == 4.0
    assert mt.model[1].num_batches_tracked.item() == 17


def test_buffers_averaged_when_asked() -> None:
    student = _tiny()
    mt = MeanTeacher(student, omega=0.9, average_buffers=True)
    _set(student, 1.0, mean=4.0, nbt=17)
    mt.update(student)
    assert mt.model[1].running_mean.item() == pytest.approx(0.4)  # 0.9*0 + 0.1*4
    assert mt.model[1].running_var.item() == pytest.approx(1.0)  # both 1
    assert mt.model[1].num_batches_tracked.item() == 17  # integers are copied


def test_state_dict_roundtrip_keeps_step() -> None:
    student = _tiny()
    mt = MeanTeacher(student, omega=0.9, warmup=True)
    _set(student, 3.0)
    mt.update(student)
    mt.update(student)
    state = mt.state_dict()
    assert state["step"] == 2
    other = MeanTeacher(_tiny(), omega=0.9, warmup=True)
    other.load_state_dict(state)
    assert other.step == 2 and other.weight() == mt.weight()
    assert torch.equal(other.model[0].weight, mt.model[0].weight)
    with pytest.raises(LF2Error, match="'model' and 'step'"):
        other.load_state_dict({"model": state["model"]})


def test_forward_output_can_be_used_in_a_student_graph() -> None:
    student = _tiny().eval()
    mt = MeanTeacher(student)
    x = torch.randn(4, 1)
    t_out = mt(x)
    assert not t_out.requires_grad
    # inference-mode tensors could not be saved for backward here; no_grad outputs can
    scale = torch.ones(4, 1, requires_grad=True)
    (scale * t_out).sum().backward()
    assert torch.allclose(scale.grad, t_out)
    assert mt.model[0].weight.grad is None


def test_mismatched_student_raises() -> None:
    mt = MeanTeacher(_tiny())
    with pytest.raises(LF2Error, match="do not match"):
        mt.update(nn.Sequential(nn.Linear(1, 1)))
    other = nn.Sequential(nn.Linear(2, 1, bias=False), nn.BatchNorm1d(1))
    with pytest.raises(LF2Error, match="shape or dtype"):
        mt.update(other)


def test_reidnet_teacher_follows_classifier_reset() -> None:
    torch.manual_seed(0)
    student = ReIDNet(arch="resnet18", num_parts=2, num_classes=3)
    mt = MeanTeacher(student, omega=0.5)
    w = torch.randn(4, 512)
    student.reset_classifier(4, w)
    mt.reset_classifier(4, torch.zeros(4, 512))
    mt.update(student)
    assert torch.allclose(mt.model.classifier.weight, 0.5 * w)
    assert not mt.model.classifier.weight.requires_grad
    before = mt.model.backbone.conv1.weight.clone()
    with torch.no_grad():
        student.backbone.conv1.weight.add_(1.0)
    mt.update(student)
    assert torch.allclose(
        mt.model.backbone.conv1.weight, 0.5 * before + 0.5 * student.backbone.conv1.weight
    )


def test_bad_omega() -> None:
    with pytest.raises(LF2Error, match="ema_omega"):
        MeanTeacher(_tiny(), omega=1.5)
