"""Supervised source-domain pre-training (docs/method.md §3, Eq. 1-3).

L = L_cls + lambda * L_tri on the source identities, Adam with step decay (and an optional
linear warm-up, the released code's), P x K batches, flip + pad/crop, no random erasing.
Optionally (``pretrain.target_bn``, MMT's trick used by the released code) a target batch is
forwarded without loss after each source batch so BN statistics see the target domain.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from lf2 import losses
from lf2.settings import input_settings, model_config, model_settings, pretrain_settings
from lf2.train import runtime
from lf2.train.checkpoint import build_model, discard_state, save_checkpoint
from lf2.train.common import (
    LossMonitor,
    divergence_limit,
    make_adam,
    outputs_to_float,
    start_run,
)
from lf2.train.driver import EpochStage, drive_epochs
from lf2.train.sampling import indices_on_device

log = logging.getLogger(__name__)


def lr_factor(epoch: int, milestones: list[int], warmup_epochs: int) -> float:
    """LR multiplier for a 1-based epoch: linear warm-up, then x0.1 at each milestone."""
    factor = 0.1 ** sum(epoch > m for m in milestones)
    if warmup_epochs and epoch <= warmup_epochs:
        factor *= epoch / warmup_epochs
    return factor


class PretrainTrainer:
    def __init__(self, params: dict, images, labels: np.ndarray, device: torch.device,
                 target_images=None) -> None:
        self.params, self.pt, self.device = params, pretrain_settings(params), device
        self.images, self.target_images = images, target_images
        self.labels = np.asarray(labels, dtype=np.int64)
        self._labels_t = torch.from_numpy(self.labels).to(device)
        self.seed = int(params.get("seed", 0))
        self.amp = runtime.resolve_precision(params.get("precision", "auto"), device)
        num_classes = int(self.labels.max()) + 1
        torch.manual_seed(runtime.derive_seed(self.seed, "pretrain-init"))
        self.model = build_model(model_config(params, num_classes), pretrained=model_settings(params).pretrained)
        self.model.to(device)
        if device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        runtime.compile_backbones([self.model], params.get("compile"))
        self.optimizer = make_adam([self.model], self.pt.lr, self.pt.weight_decay,
                                   impl=params["adam"])

    def set_epoch_lr(self, epoch: int) -> float:
        lr = self.pt.lr * lr_factor(epoch, self.pt.milestones, self.pt.warmup_epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self, idx: torch.Tensor, generator: torch.Generator, target_idx: torch.Tensor | None = None):
        """One step on the source images ``idx`` (indices on the training device)."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        x = self.images.batch(idx, erasing=False, generator=generator)
        y = self._labels_t[idx]
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(self.device, self.amp):
            out = self.model.forward_train(x)
            if target_idx is not None:  # BN statistics only: no loss, no gradient
                with torch.no_grad():
                    self.model.feature_map(self.target_images.batch(target_idx, erasing=False, generator=generator))
        out = outputs_to_float(out)
        terms = {"cls": losses.cross_entropy(out.logits, y, label_smoothing=self.pt.label_smoothing),
                 "tri": losses.triplet_loss(self.pt.global_triplet, out.global_feat, y, margin=self.pt.margin)}
        loss = terms["cls"] + self.pt.lambda_tri * terms["tri"]
        loss.backward()
        self.optimizer.step()
        return loss, terms

    def train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm import tqdm

        from lf2.data.sampler import PKSampler

        pt = self.pt
        iters = pt.iters_per_epoch
        sampler = PKSampler(self.labels, pt.batch_p, pt.batch_k, iters,
                            runtime.derive_seed(self.seed, "pretrain-sampler", epoch))
        gen = runtime.torch_generator(runtime.derive_seed(self.seed, "pretrain-augment", epoch), self.device)
        trng = np.random.default_rng(runtime.derive_seed(self.seed, "pretrain-target", epoch))
        monitor = LossMonitor(epoch, iters, self.device, limit=divergence_limit(int(self.labels.max()) + 1))
        source = [np.asarray(idx, dtype=np.int64) for idx in sampler]
        target: list = [None] * len(source)
        if self.target_images is not None:
            n = len(self.target_images)
            target = indices_on_device([trng.choice(n, size=len(idx), replace=n < len(idx)) for idx in source],
                                       self.device)
        bar = tqdm(zip(indices_on_device(source, self.device), target, strict=True), total=iters,
                   desc=f"epoch {epoch}", disable=not runtime.show_progress(), leave=False)
        for it, (idx, tidx) in enumerate(bar):
            loss, terms = self.train_step(idx, gen, tidx)
            monitor.add(it, loss, terms)
        return monitor.means(iters)


def run_pretrain(params: dict, *, source: Path, target: Path | None, out: Path, resume: bool = True) -> Path:
    from lf2.data.manifest import load_manifest
    from lf2.train.images import TrainImages

    pt, inp = pretrain_settings(params), input_settings(params)
    device, files = start_run(params, out, {"stage": "pretrain", "source": str(source),
                                            "target": str(target) if target else None})
    src = load_manifest(source)
    train = src.split("train")
    _, labels = np.unique(train["pid"].to_numpy(), return_inverse=True)

    def images_for(manifest):
        return TrainImages(manifest.paths("train"), height=inp.height, width=inp.width, pad=inp.pad,
                           flip=inp.flip, random_erasing=0.0, cache=inp.cache, device=device,
                           workers=inp.workers)

    target_images = images_for(load_manifest(target)) if (pt.target_bn and target is not None) else None
    trainer = PretrainTrainer(params, images_for(src), labels, device, target_images)

    def run_epoch(epoch: int) -> tuple[dict, str]:
        t0 = time.perf_counter()
        lr = trainer.set_epoch_lr(epoch)
        losses_ = trainer.train_epoch(epoch)
        record = {"stage": "pretrain", "row": "pretrain", "epoch": epoch, "iters": pt.iters_per_epoch,
                  "lr": lr, "losses": {"total": losses_["total"], "cls": losses_["cls"],
                                       "tri": losses_["tri"], "part_tri": [], "fm": []},
                  "time": {"train": time.perf_counter() - t0}, "eval": None}
        return record, (f"lr {lr:.2e}  loss {losses_['total']:.3f} (cls {losses_['cls']:.3f}, "
                        f"tri {losses_['tri']:.3f})")

    def restore(state: dict) -> None:
        trainer.model.load_state_dict(state["student"])
        trainer.optimizer.load_state_dict(state["optimizer"])

    log.info("pre-training on %s: %d ids, %d images, %d epochs x %d iterations, device %s, %s",
             src.name, int(labels.max()) + 1, len(labels), pt.epochs, pt.iters_per_epoch, device,
             runtime.precision_name(trainer.amp))
    drive_epochs(files, EpochStage(
        label="pre-training", epochs=pt.epochs,
        header={"stage": "pretrain", "row": "pretrain"}, run_epoch=run_epoch, restore=restore,
        state=lambda: {"model_config": trainer.model.config(), "student": trainer.model.state_dict(),
                       "optimizer": trainer.optimizer.state_dict()},
    ), resume=resume)
    save_checkpoint(out, {"stage": "pretrain", "row": "pretrain", "model_config": trainer.model.config(),
                          "student": trainer.model.state_dict(), "teacher": None, "fusion": None,
                          "params": params, "epoch": pt.epochs,
                          "meta": {"source": src.name, "num_classes": int(labels.max()) + 1,
                                   "selection": "last epoch",
                                   "precision": runtime.precision_name(trainer.amp)}})
    discard_state(files.state)  # finished: a forced rerun trains again
    return Path(out)
