"""Per-image torchvision pipelines (PIL in, normalised float tensor out).

Train: resize (H, W) -> random horizontal flip -> zero pad + random crop back to (H, W)
-> ToTensor -> ImageNet normalisation -> random erasing (value 0, after normalisation,
as the field does). Test: resize -> ToTensor -> normalisation. ``IMAGENET_MEAN`` and
``IMAGENET_STD`` are shared with the batched tensor pipeline.
"""

from __future__ import annotations

from typing import Any

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def build_train_transform(
    height: int, width: int, *, pad: int = 10, flip: bool = True, random_erasing: float = 0.0
) -> Any:
    """Training augmentation; ``random_erasing`` is the erasing probability (0 = off)."""
    from torchvision import transforms as T

    if not 0.0 <= random_erasing <= 1.0:
        from lf2.errors import ParamsError

        raise ParamsError(f"random_erasing={random_erasing}; expected a probability in [0, 1]")
    steps: list[Any] = [T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR)]
    if flip:
        steps.append(T.RandomHorizontalFlip(p=0.5))
    if pad > 0:
        steps += [T.Pad(pad, fill=0, padding_mode="constant"), T.RandomCrop((height, width))]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if random_erasing > 0:
        steps.append(T.RandomErasing(p=random_erasing, value=0))
    return T.Compose(steps)


def build_test_transform(height: int, width: int) -> Any:
    """Evaluation pipeline: deterministic resize and normalisation."""
    from torchvision import transforms as T

    return T.Compose([
        T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
