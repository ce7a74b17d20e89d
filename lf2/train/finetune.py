"""Target-domain fine-tuning (docs/method.md §4): the one loop every Table II row runs.

Each epoch: (1) extract features of all target training images with the teacher (and,
for LF², the student's stripes fused by FM); (2) cluster each feature set into M_t
pseudo identities; (3) re-initialise the classifier from the centroids; (4) train the
student for ``iters_per_epoch`` steps, updating the teacher by EMA after every step;
(5) write the resume state and the epoch log atomically. The reported model is the
LAST epoch's teacher; the test split is never used to select anything.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lf2.errors import CheckpointError, ParamsError
from lf2.settings import finetune_settings, input_settings, model_config, model_settings
from lf2.train import runtime
from lf2.train.adam import FusedAdam
from lf2.train.checkpoint import (
    build_model,
    check_architecture,
    discard_state,
    load_checkpoint,
    save_checkpoint,
)
from lf2.train.common import (
    LossMonitor,
    make_adam,
    outputs_to_float,
    start_run,
)
from lf2.train.driver import EpochStage, drive_epochs
from lf2.train.sampling import make_sampling, on_device
from lf2.train.variants import EpochFeatures, LossWeights, Variant, make_variant

log = logging.getLogger(__name__)


class FinetuneTrainer:
    """State and step of one fine-tuning run; :func:`run_finetune` drives the epochs."""

    def __init__(self, params: dict, variant: Variant, clusters: int, images, init_state: dict | None,
                 device: torch.device, true_pids: np.ndarray | None = None) -> None:
        from lf2.models.fusion import FusionHead
        from lf2.models.teacher import MeanTeacher

        self.params, self.variant, self.clusters, self.images = params, variant, clusters, images
        self.ft, self.device = finetune_settings(params), device
        self.true_pids = true_pids
        self.weights = LossWeights.from_settings(self.ft)
        self.amp = runtime.resolve_precision(params.get("precision", "auto"), device)
        self.seed = int(params.get("seed", 0))
        n = len(images)
        if not 2 <= clusters <= n:
            raise ParamsError(f"clusters (M_t) = {clusters}; expected 2 <= M_t <= {n} "
                              "(the number of target training images)")
        if self.ft.clustering.method == "kmeans" and self.ft.batch_p > clusters:
            raise ParamsError(f"finetune.batch_p = {self.ft.batch_p} identities per batch exceeds "
                              f"M_t = {clusters} pseudo identities; expected finetune.batch_p <= M_t")
        torch.manual_seed(runtime.derive_seed(self.seed, "init"))
        self.student = build_model(model_config(params, num_classes=clusters))
        if init_state is not None:
            self._load_pretrained(init_state)
        self.student.to(device)
        if device.type == "cuda":
            self.student.to(memory_format=torch.channels_last)
        self.teacher_bn = self.ft.teacher_bn  # own (precise BN) | own_step | student
        self.teacher = MeanTeacher(self.student, omega=self.ft.ema_omega, warmup=self.ft.ema_warmup,
                                   average_buffers=self.ft.ema_buffers, own_buffers=self.teacher_bn != "student")
        runtime.compile_backbones([self.student, self.teacher.model], params.get("compile"))
        self.fusion = None
        if variant.uses_fusion:
            m = model_settings(params)
            self.fusion = FusionHead(self.student.out_channels, m.num_parts, m.fm_reduction,
                                     variant.fusion_mode(m.fm_mode)).to(device)
        self.optimizer = self._new_optimizer()
        self.label_sets: list[np.ndarray] = []
        self._label_tensors: list[torch.Tensor] = []

    # ----------------------------------------------------------------- setup
    def _load_pretrained(self, ckpt: dict) -> None:
        check_architecture(ckpt, model_config(self.params), ckpt.get("_path", "init checkpoint"))
        state = {k: v for k, v in ckpt["student"].items() if not k.startswith("classifier.")}
        missing, unexpected = self.student.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("classifier.")]
        if missing or unexpected:
            raise CheckpointError(f"init checkpoint does not fit the model: missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}")

    def _trainable_modules(self) -> list[torch.nn.Module]:
        mods: list[torch.nn.Module] = [self.student]
        if self.fusion is not None and self.fusion.trainable:
            mods.append(self.fusion)
        return mods

    def _new_optimizer(self, previous: torch.optim.Optimizer | FusedAdam | None = None,
                       ) -> torch.optim.Optimizer | FusedAdam:
        return make_adam(self._trainable_modules(), self.ft.lr, self.ft.weight_decay, previous,
                         impl=self.params["adam"])

    # ------------------------------------------------------- pseudo labels
    @torch.no_grad()
    def extract(self, batch_size: int = 256) -> EpochFeatures:
        """One pass over the target images computing only the features the variant clusters."""
        teacher, student = self.teacher.model, self.student
        need_tparts = "teacher_parts" in self.variant.features
        need_sparts = "student_parts" in self.variant.features
        g_all, gbn_all, tp_all, sp_all = [], [], [], []
        with runtime.eval_mode(student, teacher), runtime.autocast(self.device, self.amp):
            for x in self.images.eval_batches(batch_size):
                if self.device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                tmap = teacher.feature_map(x)
                g = teacher.pool(tmap)
                g_all.append(g.float())
                gbn_all.append(teacher.bnneck(g).float())
                if need_tparts:
                    tp_all.append([p.float() for p in teacher.part_features(tmap)])
                if need_sparts:
                    sp_all.append([p.float() for p in student.part_features(student.feature_map(x))])

        def stack(per_batch: list[list[torch.Tensor]]) -> list[torch.Tensor]:
            return [torch.cat(parts) for parts in zip(*per_batch, strict=True)] if per_batch else []

        return EpochFeatures(teacher_global=torch.cat(g_all), teacher_global_bn=torch.cat(gbn_all),
                             teacher_parts=stack(tp_all), student_parts=stack(sp_all))

    def make_labels(self, epoch: int) -> tuple[list[np.ndarray], np.ndarray, dict]:
        """Cluster this epoch's feature sets.

        Returns the label sets, the L2-normalised BN'd global features (the classifier's input
        space, for its re-initialisation from centroids) and the timings.
        """
        from lf2.cluster import pseudo_labels

        t0 = time.perf_counter()
        if epoch == 1:  # later epochs: refreshed at the end of the previous one's training
            self.refresh_teacher_bn(0)
        feats = self.extract()
        sets = self.variant.cluster_features(feats, self.fusion)
        sets = [F.normalize(s.float(), dim=1).cpu().numpy().astype(np.float32) for s in sets]
        t1 = time.perf_counter()
        c = self.ft.clustering
        if self.variant.true_labels:  # the supervised reference: no clustering
            if self.true_pids is None:
                raise ParamsError(f"variant {self.variant.name!r} needs the target's training identities")
            labels = [np.unique(self.true_pids, return_inverse=True)[1].astype(np.int64)]
        else:
            labels = pseudo_labels(
                sets, method=c.method, k=self.clusters, seed=runtime.derive_seed(self.seed, "cluster", epoch),
                niter=c.kmeans_iters, eps=c.dbscan_eps, min_samples=c.dbscan_min_samples,
                k1=c.k1, k2=c.k2, device=str(self.device),
            )
        t2 = time.perf_counter()
        bn = F.normalize(feats.teacher_global_bn, dim=1).cpu().numpy().astype(np.float32)
        return labels, bn, {"extract": t1 - t0, "cluster": t2 - t1}

    def set_labels(self, labels: list[np.ndarray], global_features: np.ndarray) -> None:
        """Install this epoch's pseudo labels and re-initialise the classifier (switchable).

        ``global_features`` are in the classifier's input space (BN'd, L2-normalised), as in
        MMT and the released code, so the centroid weights match what the classifier sees.
        """
        from lf2.cluster import class_centroids, match_to_previous

        labels = [np.asarray(y, dtype=np.int64) for y in labels]
        if not self.ft.reinit_classifier and self.label_sets and labels[0].max() == self.label_sets[0].max():
            # kept classifier rows must score the same clusters: give new clusters the old ids
            labels[0] = match_to_previous(global_features, labels[0], self.label_sets[0])
        self.label_sets = labels
        self._label_tensors = [torch.from_numpy(y).to(self.device) for y in self.label_sets]
        num_classes = int(self.label_sets[0].max()) + 1
        weight = None
        if self.ft.reinit_classifier:
            weight = torch.from_numpy(class_centroids(global_features, self.label_sets[0], num_classes))
        current = self.student.classifier.out_features if self.student.classifier is not None else -1
        if weight is not None or current != num_classes:
            self.student.reset_classifier(num_classes, weight)
            self.teacher.reset_classifier(num_classes, weight)
            self.optimizer = self._new_optimizer(None if self.ft.recreate_optimizer else self.optimizer)
        elif self.ft.recreate_optimizer:
            self.optimizer = self._new_optimizer()

    # ------------------------------------------------------------- training
    def train_step(self, batches, generator: torch.Generator, erasing: bool = True):
        self.student.train()
        self.optimizer.zero_grad(set_to_none=True)
        need_teacher = self.variant.needs_teacher_in_step(self.fusion)
        total_loss, all_terms = None, {}
        for idx_t, sets in batches:
            x = self.images.batch(idx_t, erasing=erasing, generator=generator)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            labels = [y[idx_t] for y in self._label_tensors]
            with runtime.autocast(self.device, self.amp):
                out = self.student.forward_train(x)
                teacher_global = None
                if need_teacher or self.teacher_bn == "own_step":
                    teacher_global = self._teacher_in_step(x)
            out = outputs_to_float(out)
            terms = self.variant.loss_terms(out, labels, sets, self.weights, teacher_global, self.fusion)
            loss = self.variant.total(terms, self.weights)
            total_loss = loss if total_loss is None else total_loss + loss
            all_terms.update(terms)
        total_loss.backward()
        self.optimizer.step()
        self.teacher.update(self.student)
        return total_loss, all_terms

    def train_epoch(self, epoch: int) -> dict[str, float]:
        ft = self.ft
        iters = ft.iters_per_epoch
        sampling = on_device(make_sampling(ft.sampling, self.label_sets, ft.batch_p, ft.batch_k, iters,
                                           runtime.derive_seed(self.seed, "sampler", epoch)), self.device)
        gen = runtime.torch_generator(runtime.derive_seed(self.seed, "augment", epoch), self.device)
        monitor = LossMonitor(epoch, iters, self.device)
        from tqdm import tqdm

        bar = tqdm(sampling, total=iters, desc=f"epoch {epoch}", disable=not runtime.show_progress(), leave=False)
        for it, batches in enumerate(bar):
            loss, terms = self.train_step(batches, gen)
            monitor.add(it, loss, terms)
        self.refresh_teacher_bn(epoch)
        return monitor.means(iters)

    @torch.no_grad()
    def _teacher_in_step(self, x: Tensor) -> Tensor:
        """The teacher's pooled global feature of a training batch. ``own_step``: a train-mode
        forward through every BN layer, which updates the teacher's own running statistics
        (the released code, MMT); otherwise eval mode."""
        t = self.teacher.model
        if self.teacher_bn != "own_step":
            return t.pool(t.feature_map(x)).float()
        t.train()
        try:
            return t.forward_train(x).global_feat.float()
        finally:
            t.eval()

    def refresh_teacher_bn(self, epoch: int) -> None:
        """``teacher_bn: own``: precise BN, the teacher's statistics recomputed from its own
        weights over one shuffled pass of augmented target training batches (as training sees
        them). Called before the first extraction and after every epoch's training."""
        if self.teacher_bn != "own":
            return
        gen = runtime.torch_generator(runtime.derive_seed(self.seed, "precise_bn", epoch), self.device)
        order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(
            runtime.derive_seed(self.seed, "precise_bn_order", epoch)))
        size = self.ft.batch_p * self.ft.batch_k
        chunks = [c for c in order.split(size) if len(c) > 1]  # BN needs two samples

        def batches():
            for idx in chunks:
                x = self.images.batch(idx.to(self.device), erasing=True, generator=gen)
                yield x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x

        t0 = time.perf_counter()
        with runtime.autocast(self.device, self.amp):
            n = self.teacher.refresh_bn(batches())
        log.info("teacher BN statistics recomputed from its own weights: %d batches, %.2fs", n,
                 time.perf_counter() - t0)

    # ---------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        return {
            "student": self.student.state_dict(),
            "ema": self.teacher.state_dict(),
            "fusion": self.fusion.state_dict() if self.fusion is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "num_classes": self.student.classifier.out_features,
            # the last epoch's pseudo labels: reinit_classifier false matches the next ones to them
            "label_sets": [torch.from_numpy(y) for y in self.label_sets],
        }

    def load_state_dict(self, state: dict) -> None:
        n = state["num_classes"]
        self.student.reset_classifier(n)
        self.teacher.reset_classifier(n)
        self.student.load_state_dict(state["student"])
        self.teacher.load_state_dict(state["ema"])
        if self.fusion is not None and state["fusion"] is not None:
            self.fusion.load_state_dict(state["fusion"])
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.label_sets = [t.numpy() for t in state.get("label_sets", [])]

    def fusion_meta(self) -> dict | None:
        if self.fusion is None:
            return None
        reduction = model_settings(self.params).fm_reduction
        return {"channels": self.student.out_channels, "reduction": reduction, "mode": self.fusion.mode}


def cluster_record(names, labels, true_pids) -> tuple[list[dict], dict]:
    from lf2.cluster import agreement, cluster_stats, nmi, purity

    records = []
    for name, y in zip(names, labels, strict=True):
        rec = {"set": name, **cluster_stats(y)}
        if true_pids is not None:  # measurement only: never used for training
            rec["purity"] = purity(y, true_pids)
            rec["nmi"] = nmi(y, true_pids)
        records.append(rec)
    agree = {}
    for a in range(len(labels)):
        for b in range(a + 1, len(labels)):
            agree[f"ari_{a}_{b}"] = agreement(labels[a], labels[b])
    return records, agree


def run_finetune(params: dict, *, variant: str, clusters: int, init: Path, target: Path, out: Path,
                 resume: bool = True, row: str | None = None) -> Path:
    """Fine-tune on the target; writes ``out`` (the last epoch), ``epochs.jsonl``, ``params.yaml``
    and the resume state ``state.pt`` beside it. Returns ``out``."""
    from lf2.data.manifest import load_manifest
    from lf2.train.images import TrainImages
    from lf2.train.monitor import maybe_evaluate

    ft, inp = finetune_settings(params), input_settings(params)
    v = make_variant(variant, model_settings(params).num_parts)
    row = row or v.row_name(clusters)
    device, files = start_run(params, out, {"stage": "finetune", "variant": variant, "clusters": clusters,
                                            "init": str(init), "target": str(target), "row": row})

    manifest = load_manifest(target)
    train = manifest.split("train")
    images = TrainImages(manifest.paths("train"), height=inp.height, width=inp.width, pad=inp.pad,
                         flip=inp.flip, random_erasing=inp.random_erasing, cache=inp.cache,
                         device=device, workers=inp.workers)
    init_ckpt = load_checkpoint(init)
    init_ckpt["_path"] = str(init)
    trainer = FinetuneTrainer(params, v, clusters, images, init_ckpt, device,
                              true_pids=train["pid"].to_numpy())

    def run_epoch(epoch: int) -> tuple[dict, str]:
        t0 = time.perf_counter()
        labels, bn_features, times = trainer.make_labels(epoch)
        trainer.set_labels(labels, bn_features)
        t1 = time.perf_counter()
        losses = trainer.train_epoch(epoch)
        t2 = time.perf_counter()
        monitor = maybe_evaluate(params, trainer.teacher.model, manifest, epoch, device)
        t3 = time.perf_counter()
        clusters_rec, agree = cluster_record(v.set_names, labels, trainer.true_pids)
        record = {
            "stage": "finetune", "row": row, "epoch": epoch, "iters": ft.iters_per_epoch,
            "lr": ft.lr, "losses": _loss_record(losses), "clusters": clusters_rec, "agreement": agree,
            "time": {**times, "labels": t1 - t0, "train": t2 - t1, "eval": t3 - t2}, "eval": monitor,
        }
        sizes = "/".join(str(c["num_clusters"]) for c in clusters_rec)
        return record, f"loss {losses['total']:.3f}  clusters {sizes}"

    log.info("fine-tuning %s on %s: %d images, %d epochs x %d iterations, device %s, %s, images %s",
             row, manifest.name, len(images), ft.epochs, ft.iters_per_epoch, device,
             runtime.precision_name(trainer.amp), images.mode)
    drive_epochs(files, EpochStage(
        label=row, epochs=ft.epochs,
        header={"stage": "finetune", "row": row}, run_epoch=run_epoch,
        restore=lambda state: trainer.load_state_dict(state["trainer"]),
        state=lambda: {"model_config": trainer.student.config(), "trainer": trainer.state_dict()},
    ), resume=resume)
    save_checkpoint(out, {
        "stage": "finetune", "row": row, "model_config": trainer.student.config(),
        "student": trainer.student.state_dict(), "teacher": trainer.teacher.model.state_dict(),
        "fusion": trainer.fusion.state_dict() if trainer.fusion is not None else None,
        "params": params, "epoch": ft.epochs,
        "meta": {"variant": variant, "clusters": clusters, "init": str(init), "target": manifest.name,
                 "fusion": trainer.fusion_meta(), "selection": "last epoch",
                 "precision": runtime.precision_name(trainer.amp)},
    })
    discard_state(files.state)  # finished: a forced rerun trains again
    return Path(out)


def _loss_record(losses: dict[str, float]) -> dict:
    parts = sorted(k for k in losses if k.startswith("part_tri"))
    fms = sorted(k for k in losses if k.startswith("fm"))
    return {"total": losses["total"], "cls": losses.get("cls", 0.0), "tri": losses.get("tri", 0.0),
            "part_tri": [losses[k] for k in parts], "fm": [losses[k] for k in fms]}
