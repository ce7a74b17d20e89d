"""ImageCache: layout, batches, evaluation order and the caching policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lf2.data.batch_transforms import BatchAugment, normalize
from lf2.data.tensor_cache import ImageCache, cache_bytes, should_cache


def images(n: int = 10, h: int = 8, w: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_layout_from_hwc_numpy_and_tensor():
    arr = images()
    for src in (arr, torch.from_numpy(arr)):
        cache = ImageCache(src, "cpu")
        assert cache.images.dtype == torch.uint8
        assert cache.shape == (10, 3, 8, 4)
        assert cache.images.is_contiguous()
        assert torch.equal(cache.images[3], torch.from_numpy(arr[3]).permute(2, 0, 1))
        assert len(cache) == 10 and cache.nbytes == 10 * 3 * 8 * 4


def test_accepts_chw_layout_as_is():
    chw = torch.from_numpy(images()).permute(0, 3, 1, 2).contiguous()
    assert torch.equal(ImageCache(chw, "cpu").images, chw)


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 8, 4, 3), np.float32), np.zeros((8, 4, 3), np.uint8), np.zeros((2, 8, 4, 1), np.uint8)]
)
def test_rejects_bad_arrays(bad):
    with pytest.raises(ValueError):
        ImageCache(bad, "cpu")


def test_batch_without_augment_is_normalised_selection():
    arr = images()
    cache = ImageCache(arr, "cpu")
    idx = [7, 0, 7, 2]
    out = cache.batch(idx)
    expect = normalize(torch.from_numpy(arr[idx]).permute(0, 3, 1, 2))
    assert out.dtype == torch.float32 and torch.equal(out, expect)
    assert torch.equal(cache.batch(np.array(idx)), out)
    assert torch.equal(cache.batch(torch.tensor(idx)), out)


def test_batch_with_augment_equals_augmenting_the_selection():
    arr = images(h=16, w=8)
    cache = ImageCache(arr, "cpu")
    aug = BatchAugment(16, 8, pad=2, flip=True, random_erasing=0.5)
    idx = [1, 4, 4, 9, 0]
    out = cache.batch(idx, aug, torch.Generator().manual_seed(3))
    sel = torch.from_numpy(arr[idx]).permute(0, 3, 1, 2).contiguous()
    assert torch.equal(out, aug(sel, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="Generator"):
        cache.batch(idx, aug, None)


def test_eval_batches_cover_all_images_in_order():
    arr = images(n=11)
    cache = ImageCache(arr, "cpu")
    batches = list(cache.eval_batches(4))
    assert [b.shape[0] for b in batches] == [4, 4, 3]
    allx = torch.cat(batches)
    assert torch.equal(allx, normalize(torch.from_numpy(arr).permute(0, 3, 1, 2)))
    with pytest.raises(ValueError):
        next(cache.eval_batches(0))


def test_should_cache_policy():
    market = cache_bytes(12936, 256, 128)
    assert market == 12936 * 3 * 256 * 128  # 1.27 GB
    assert should_cache(12936, 256, 128, "cpu", limit_bytes=2 * 2**30)
    assert not should_cache(12936, 256, 128, "cpu", limit_bytes=2**30)
    assert should_cache(10, 8, 4, "cpu")  # a few bytes always fit
    assert not should_cache(10**9, 256, 128, "cpu")  # 98 TB never does


def test_from_paths_uses_decode_all(tmp_path):
    pytest.importorskip("lf2.data.images")
    from PIL import Image

    arr = images(n=3, h=16, w=8)
    paths = []
    for i, a in enumerate(arr):
        p = tmp_path / f"{i}.png"
        Image.fromarray(a).save(p)
        paths.append(p)
    cache = ImageCache.from_paths(paths, 16, 8, "cpu")
    assert cache.shape == (3, 3, 16, 8)
    assert torch.equal(cache.images, torch.from_numpy(arr).permute(0, 3, 1, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cache_on_gpu_matches_cpu():
    arr = images(h=16, w=8)
    aug = BatchAugment(16, 8, pad=2, flip=True, random_erasing=0.5)
    cpu = ImageCache(arr, "cpu").batch([1, 2], aug, torch.Generator().manual_seed(0))
    gpu = ImageCache(arr, "cuda").batch([1, 2], aug, torch.Generator().manual_seed(0))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
