"""Per-image torchvision pipelines (PIL in, normalised float tensor out).

Train: resize (H, W) -> random horizontal flip -> zero pad + random crop back to (H, W)
-> ToTensor -> ImageNet normalisation -> random erasing (value 0, after normalisation,
as the field does). Test: resize -> ToTensor -> normalisation, the same operations written
without torchvision. ``IMAGENET_MEAN`` and ``IMAGENET_STD`` are shared with the batched
tensor pipeline.
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


class EvalTransform:
    """Evaluation pipeline: deterministic resize and normalisation, without torchvision.

    The same operations as torchvision's ``Compose([Resize((H, W), BILINEAR), ToTensor(),
    Normalize(IMAGENET_MEAN, IMAGENET_STD)])`` on a PIL image, bit for bit
    (tests/test_transforms.py): PIL's bilinear resize, uint8 HWC -> float CHW / 255, then
    ``sub_(mean).div_(std)``. Evaluation jobs are many small processes, and importing
    torchvision costs each about 2 s (it imports torch._dynamo; docs/performance.md).
    """

    def __init__(self, height: int, width: int) -> None:
        import torch

        self.height, self.width = int(height), int(width)
        self.mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img: Any) -> Any:
        import numpy as np
        import torch
        from PIL import Image

        if img.size != (self.width, self.height):
            img = img.resize((self.width, self.height), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.array(img if img.mode == "RGB" else img.convert("RGB"), np.uint8, copy=True))
        x = pixels.permute(2, 0, 1).contiguous().to(torch.float32).div(255)
        return x.sub_(self.mean).div_(self.std)


def build_test_transform(height: int, width: int) -> EvalTransform:
    """Evaluation pipeline: deterministic resize and normalisation (:class:`EvalTransform`)."""
    return EvalTransform(height, width)
