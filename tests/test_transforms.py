"""Per-image transforms and image decoding helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lf2.data.images import ImageDataset, decode_all, find_corrupt, load_rgb
from lf2.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_test_transform,
    build_train_transform,
)
from lf2.errors import DatasetError, ParamsError


def photo(h: int = 50, w: int = 30, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def test_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


def test_test_transform_shape_and_normalisation():
    img = Image.new("RGB", (30, 50), (255, 0, 128))
    x = build_test_transform(64, 32)(img)
    assert x.shape == (3, 64, 32) and x.dtype == torch.float32
    expected = [(1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (0.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
                (128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    torch.testing.assert_close(x.mean(dim=(1, 2)), torch.tensor(expected), rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [(50, 30), (64, 32), (17, 9)])
def test_test_transform_equals_torchvisions_bit_for_bit(size):
    # lf2's evaluation transform is written without torchvision (start-up cost); it must
    # give exactly torchvision's Resize(BILINEAR) -> ToTensor -> Normalize
    from torchvision import transforms as T

    reference = T.Compose([T.Resize((64, 32), interpolation=T.InterpolationMode.BILINEAR),
                           T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    img = photo(*size, seed=7)
    ours = build_test_transform(64, 32)(img)
    assert ours.dtype == torch.float32 and ours.shape == (3, 64, 32)
    torch.testing.assert_close(ours, reference(img), rtol=0, atol=0)


def test_train_transform_shape_pad_and_flip():
    torch.manual_seed(0)
    img = photo()
    t = build_train_transform(64, 32, pad=4, flip=True)
    outs = [t(img) for _ in range(20)]
    assert all(o.shape == (3, 64, 32) and o.dtype == torch.float32 for o in outs)
    zero = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    # a zero-padded border shows up as normalised black in some crops
    has_pad = [bool((o[:, 0, :] - zero[:, None]).abs().max() < 1e-5) for o in outs]
    assert any(has_pad)
    assert len({o.sum().item() for o in outs}) > 5  # random


def test_train_transform_without_augmentation_equals_test():
    img = photo(seed=3)
    a = build_train_transform(64, 32, pad=0, flip=False)(img)
    b = build_test_transform(64, 32)(img)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_random_erasing_switch():
    img = Image.new("RGB", (32, 64), (200, 200, 200))
    torch.manual_seed(1)
    erased = build_train_transform(64, 32, pad=0, flip=False, random_erasing=1.0)(img)
    # value 0 after normalisation: erased pixels are exactly 0 in all channels
    assert ((erased == 0).all(dim=0)).sum() > 0
    clean = build_train_transform(64, 32, pad=0, flip=False, random_erasing=0.0)(img)
    assert ((clean == 0).all(dim=0)).sum() == 0
    with pytest.raises(ParamsError):
        build_train_transform(64, 32, random_erasing=1.5)


def test_decode_all_matches_test_transform(tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        photo(seed=i).save(p)
        paths.append(p)
    arr = decode_all(paths, 64, 32, workers=2)
    assert arr.shape == (5, 64, 32, 3) and arr.dtype == np.uint8
    t = build_test_transform(64, 32)
    for i, p in enumerate(paths):
        x = t(Image.open(p))
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        back = torch.from_numpy(arr[i]).permute(2, 0, 1).float() / 255
        torch.testing.assert_close((back - mean) / std, x, rtol=0, atol=1e-5)


def test_load_rgb_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match="missing.jpg"):
        load_rgb(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError, match="bad.jpg"):
        load_rgb(bad)
    grey = tmp_path / "grey.png"
    Image.new("L", (4, 8), 7).save(grey)
    assert load_rgb(grey).mode == "RGB"


def test_find_corrupt_detects_truncation(tmp_path):
    good = tmp_path / "good.jpg"
    photo().save(good, quality=90)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(data[: len(data) // 2])
    bad = find_corrupt([good, trunc, good], workers=1)
    assert [i for i, _ in bad] == [1]
    assert "trunc.jpg" in bad[0][1]


def test_image_dataset(tmp_path):
    p = tmp_path / "a.png"
    photo().save(p)
    ds = ImageDataset([p, p], build_test_transform(64, 32))
    assert len(ds) == 2
    x, i = ds[1]
    assert x.shape == (3, 64, 32) and i == 1
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    xb, ib = next(iter(loader))
    assert xb.shape == (2, 3, 64, 32) and ib.tolist() == [0, 1]
