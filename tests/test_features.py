"""Feature extraction: order, flip sum, normalisation, modes and the image loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lf2.eval.features import extract_features, iter_eval_batches


class Asymmetric(nn.Module):
    """Embedding that changes under a horizontal flip: column sums weighted by position."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3)  # its mode shows whether eval() was used

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.arange(1, x.shape[3] + 1, dtype=x.dtype)
        left = (x * w).sum(dim=(2, 3))  # (B, 3)
        return torch.cat([left, x.mean(dim=(2, 3)) + 1.0], dim=1)  # (B, 6)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 4, 5, generator=g)


def _expected(model: nn.Module, x: torch.Tensor, flip: bool, normalize: bool) -> np.ndarray:
    with torch.no_grad():
        e = model(x)
        if flip:
            e = e + model(torch.flip(x, dims=[3]))
        if normalize:
            e = e / e.norm(dim=1, keepdim=True)
    return e.numpy()


@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_flip_sum_and_normalisation(flip: bool, normalize: bool) -> None:
    model = Asymmetric()
    x = _images(7)
    got = extract_features(model, [x[:3], x[3:]], flip=flip, normalize=normalize, progress=False)
    assert got.dtype == np.float32 and got.shape == (7, 6)
    np.testing.assert_allclose(got, _expected(model, x, flip, normalize), rtol=1e-6, atol=1e-6)
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)


def test_flip_changes_an_asymmetric_embedding() -> None:
    model = Asymmetric()
    x = _images(4)
    a = extract_features(model, [x], flip=True, progress=False)
    b = extract_features(model, [x], flip=False, progress=False)
    assert not np.allclose(a, b)


def test_indices_put_rows_in_dataset_order() -> None:
    model = Asymmetric()
    x = _images(6)
    order = torch.tensor([4, 1, 5, 0, 3, 2])
    batches = [(x[order[:4]], order[:4]), (x[order[4:]], order[4:])]
    got = extract_features(model, batches, progress=False)
    np.testing.assert_allclose(got, _expected(model, x, True, True), rtol=1e-6, atol=1e-6)
    # plain tensors keep the iteration order
    plain = extract_features(model, [x[order]], progress=False)
    np.testing.assert_allclose(plain, _expected(model, x[order], True, True), rtol=1e-6, atol=1e-6)


def test_eval_mode_used_and_restored() -> None:
    seen = []

    class Spy(Asymmetric):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((self.training, torch.is_inference_mode_enabled()))
            return super().forward(x)

    model = Spy().train()
    extract_features(model, [_images(2)], flip=False, progress=False)
    assert seen == [(False, True)] and model.training


def test_plain_callable_and_bad_inputs() -> None:
    x = _images(3)
    got = extract_features(
        lambda t: t.flatten(1)[:, :5], [x], flip=False, normalize=False, progress=False
    )
    np.testing.assert_allclose(got, x.flatten(1)[:, :5].numpy())
    with pytest.raises(ValueError, match="no batches"):
        extract_features(Asymmetric(), [], progress=False)
    with pytest.raises(ValueError, match="exactly once"):
        extract_features(Asymmetric(), [(x, torch.tensor([0, 0, 2]))], progress=False)
    with pytest.raises(ValueError, match=r"\(batch, dim\)"):
        extract_features(lambda t: t, [x], progress=False)
    with pytest.raises(ValueError, match="all or none"):
        extract_features(Asymmetric(), [(x[:1], torch.tensor([0])), x[1:]], progress=False)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        extract_features(Asymmetric(), [x[0]], progress=False)


def test_progress_bar_forced_on_still_returns_same(capsys: pytest.CaptureFixture[str]) -> None:
    model = Asymmetric()
    x = _images(5)
    a = extract_features(model, [x[:2], x[2:]], progress="query")
    b = extract_features(model, [x[:2], x[2:]], progress=None)  # stderr is not a TTY here
    np.testing.assert_array_equal(a, b)
    assert "query" in capsys.readouterr().err


def test_iter_eval_batches_reads_images_in_order(tmp_path) -> None:
    from PIL import Image

    paths = []
    for i in range(5):
        arr = np.full((16, 8, 3), i * 40, dtype=np.uint8)
        p = tmp_path / f"{i:04d}_c1s1_000001_00.jpg"
        Image.fromarray(arr).save(p, quality=100)
        paths.append(p)
    loader = iter_eval_batches(paths, height=8, width=4, batch_size=2)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(2, 3, 8, 4), (2, 3, 8, 4), (1, 3, 8, 4)]
    assert torch.cat([b[1] for b in batches]).tolist() == [0, 1, 2, 3, 4]
    means = extract_features(
        lambda t: t.mean(dim=(2, 3)), loader, flip=False, normalize=False, progress=False
    )[:, 0]
    assert np.all(np.diff(means) > 0)  # brighter images later: order kept
    with pytest.raises(ValueError, match="batch_size"):
        iter_eval_batches(paths, 8, 4, 0)
