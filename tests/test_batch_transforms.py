"""BatchAugment against the per-image PIL/torchvision pipeline.

Deterministic parts are compared exactly; random parts by their distributions, read back
from the augmented images (a coordinate-encoding test image shows flip and crop offset;
erased pixels are exactly 0 after normalisation, which no real pixel value maps to).
Statistical tests use fixed seeds and a 0.001 significance level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from lf2.data.batch_transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchAugment,
    apply_erasing,
    erase_boxes,
    normalize,
)

ALPHA = 1e-3


def reference_transform(height: int, width: int, pad: int, flip: bool, erasing: float):
    """The per-image pipeline: the project's when present, else torchvision's pieces."""
    try:
        from lf2.data.transforms import build_train_transform
    except ImportError:
        import torchvision.transforms as T

        steps = [T.Resize((height, width))]
        if flip:
            steps.append(T.RandomHorizontalFlip(0.5))
        if pad:
            steps += [T.Pad(pad), T.RandomCrop((height, width))]
        steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        if erasing > 0:
            steps.append(T.RandomErasing(p=erasing, value=0))
        return T.Compose(steps)
    return build_train_transform(height, width, pad=pad, flip=flip, random_erasing=erasing)


def coord_image(height: int, width: int) -> np.ndarray:
    """uint8 (H, W, 3): channel 0 = row + 1, channel 1 = column + 1, channel 2 = 200."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = np.arange(1, height + 1)[:, None]
    img[..., 1] = np.arange(1, width + 1)[None, :]
    img[..., 2] = 200
    return img


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(-1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(-1, 3, 1, 1)
    return torch.round((x * std + mean) * 255).clamp(0, 255).to(torch.uint8)


def read_flip_offsets(out: torch.Tensor, height: int, width: int, pad: int):
    """(flipped, top, left) of each output, read at the centre pixel.

    Needs pad < W // 2 - 1 and pad <= H // 2 so that the centre pixels are never padding.
    """
    u = to_uint8(out).long()
    cy, cx = height // 2, width // 2
    row = u[:, 0, cy, cx] - 1
    col = u[:, 1, cy, cx] - 1
    flipped = u[:, 1, cy, cx + 1] < u[:, 1, cy, cx]
    top = row - cy + pad
    left = torch.where(flipped, width - 1 + pad - cx - col, col - cx + pad)
    return flipped, top, left


def erased_boxes_from(out: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(erased?, h, w) per image from the exact-zero mask."""
    mask = (out == 0).all(dim=1)
    rows = mask.any(dim=2).sum(dim=1)
    cols = mask.any(dim=1).sum(dim=1)
    return (rows > 0).numpy(), rows.numpy(), cols.numpy()


def run_reference(img: np.ndarray, n: int, pad: int, flip: bool, erasing: float, seed: int):
    h, w = img.shape[:2]
    tf = reference_transform(h, w, pad, flip, erasing)
    pil = Image.fromarray(img)
    torch.manual_seed(seed)
    return torch.stack([tf(pil) for _ in range(n)])


def run_batch(img: np.ndarray, n: int, pad: int, flip: bool, erasing: float, seed: int):
    h, w = img.shape[:2]
    batch = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(n, 1, 1, 1).contiguous()
    gen = torch.Generator().manual_seed(seed)
    return BatchAugment(h, w, pad=pad, flip=flip, random_erasing=erasing)(batch, gen)


def test_normalize_equals_totensor_normalize_exactly():
    import torchvision.transforms as T

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 12, 3), dtype=np.uint8)
    ref = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(T.ToTensor()(Image.fromarray(img)))
    ours = normalize(torch.from_numpy(img).permute(2, 0, 1)[None])[0]
    assert torch.equal(ours, ref)


def test_no_flip_zero_pad_reproduces_input():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(0, 256, (5, 3, 16, 8), dtype=np.uint8))
    out = BatchAugment(16, 8, pad=0, flip=False, random_erasing=0.0)(x, torch.Generator())
    assert out.dtype == torch.float32 and out.shape == (5, 3, 16, 8)
    assert torch.equal(out, normalize(x))
    assert torch.equal(to_uint8(out), x)


def test_reference_pipeline_is_identity_without_randomness():
    img = coord_image(16, 8)
    ref = run_reference(img, 1, pad=0, flip=False, erasing=0.0, seed=0)
    ours = run_batch(img, 1, pad=0, flip=False, erasing=0.0, seed=0)
    assert torch.equal(ours, ref)


def test_crop_and_flip_are_exact_shifts_of_the_padded_image():
    h, w, pad = 16, 16, 3
    img = coord_image(h, w)
    out = run_batch(img, 64, pad=pad, flip=True, erasing=0.0, seed=3)
    flipped, top, left = read_flip_offsets(out, h, w, pad)
    assert flipped.any() and (~flipped).any()
    for i in range(out.shape[0]):
        t, lft = int(top[i]), int(left[i])
        # flip first, then zero pad, then crop at (top, left): torchvision's order
        src = np.pad(img[:, ::-1] if flipped[i] else img, ((pad, pad), (pad, pad), (0, 0)))
        expect = torch.from_numpy(np.ascontiguousarray(src[t : t + h, lft : lft + w]))
        assert torch.equal(to_uint8(out[i : i + 1])[0], expect.permute(2, 0, 1))


def test_flip_rate_and_offsets_match_reference_distribution():
    h, w, pad, n = 16, 16, 4, 3000
    img = coord_image(h, w)
    ours = read_flip_offsets(run_batch(img, n, pad, True, 0.0, seed=5), h, w, pad)
    ref = read_flip_offsets(run_reference(img, n, pad, True, 0.0, seed=5), h, w, pad)
    # flip rate: binomial test against 0.5 for both, and the two agree
    for flipped, _, _ in (ours, ref):
        assert stats.binomtest(int(flipped.sum()), n, 0.5).pvalue > ALPHA
    # offsets: uniform over 0..2*pad (chi-square), same in both pipelines (two-sample)
    bins = 2 * pad + 1
    for _, top, left in (ours, ref):
        for off in (top, left):
            assert int(off.min()) >= 0 and int(off.max()) <= 2 * pad
            counts = np.bincount(off.numpy(), minlength=bins)
            assert stats.chisquare(counts).pvalue > ALPHA
    for k in (1, 2):
        table = np.stack([np.bincount(x[k].numpy(), minlength=bins) for x in (ours, ref)])
        assert stats.chi2_contingency(table).pvalue > ALPHA


def test_no_flip_means_never_flipped():
    h, w, pad = 16, 16, 2
    flipped, _, _ = read_flip_offsets(run_batch(coord_image(h, w), 200, pad, False, 0.0, 0), h, w, pad)
    assert not flipped.any()


def test_erasing_matches_torchvision_distribution():
    h, w, n, p = 64, 32, 3000, 0.5
    img = np.full((h, w, 3), 90, dtype=np.uint8)
    ours = erased_boxes_from(run_batch(img, n, 0, False, p, seed=7))
    ref = erased_boxes_from(run_reference(img, n, 0, False, p, seed=7))
    (e1, h1, w1), (e2, h2, w2) = ours, ref
    # rate: p times the chance that one of 10 attempts fits; compare the two directly
    assert stats.chi2_contingency([[e1.sum(), n - e1.sum()], [e2.sum(), n - e2.sum()]]).pvalue > ALPHA
    assert abs(e1.mean() - p) < 0.1  # most draws fit at 64x32
    area1, area2 = (h1 * w1)[e1] / (h * w), (h2 * w2)[e2] / (h * w)
    ratio1, ratio2 = np.log(h1[e1] / w1[e1]), np.log(h2[e2] / w2[e2])
    assert stats.ks_2samp(area1, area2).pvalue > ALPHA
    assert stats.ks_2samp(ratio1, ratio2).pvalue > ALPHA
    # the boxes are the right shape: area within the (rounded) scale range, strictly inside
    assert area1.min() >= 0.015 and area1.max() <= 0.35
    assert (h1[e1] < h).all() and (w1[e1] < w).all()


def test_erase_boxes_positions_are_uniform_and_inside():
    h, w, n = 40, 20, 4000
    boxes = erase_boxes(n, h, w, 1.0, torch.Generator().manual_seed(11))
    top, left, bh, bw = boxes.unbind(1)
    assert (bh > 0).all()
    assert ((top + bh) <= h).all() and ((left + bw) <= w).all() and (top >= 0).all()
    # relative position top / (h - bh) is uniform on [0, 1] (discrete, so test coarse bins)
    rel = ((top.double() + 0.5) / (h - bh + 1).double()).numpy()
    counts = np.histogram(rel, bins=5, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > ALPHA


def test_apply_erasing_sets_exactly_the_box():
    x = torch.ones(2, 3, 6, 5)
    boxes = torch.tensor([[1, 2, 3, 2], [0, 0, 0, 0]])
    apply_erasing(x, boxes)
    assert x[0, :, 1:4, 2:4].eq(0).all()
    assert x[0].eq(0).sum() == 3 * 3 * 2
    assert x[1].eq(1).all()


def test_reproducible_by_seed_and_seed_sensitive():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.integers(0, 256, (8, 3, 32, 16), dtype=np.uint8))
    aug = BatchAugment(32, 16, pad=4, flip=True, random_erasing=0.5)
    a = aug(x, torch.Generator().manual_seed(42))
    b = aug(x, torch.Generator().manual_seed(42))
    c = aug(x, torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rejects_wrong_input():
    aug = BatchAugment(16, 8, pad=2)
    with pytest.raises(ValueError, match="uint8"):
        aug(torch.zeros(1, 3, 16, 8), torch.Generator())
    with pytest.raises(ValueError, match="16x8"):
        aug(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.Generator())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_same_result_on_gpu_and_cpu():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.integers(0, 256, (8, 3, 32, 16), dtype=np.uint8))
    aug = BatchAugment(32, 16, pad=4, flip=True, random_erasing=0.5)
    cpu = aug(x, torch.Generator().manual_seed(1))
    gpu = aug(x.cuda(), torch.Generator().manual_seed(1))
    torch.testing.assert_close(gpu.cpu(), cpu)
