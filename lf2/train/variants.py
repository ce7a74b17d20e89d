"""The Table II rows as small objects the one fine-tuning loop consults.

A variant answers two questions: which features are clustered into pseudo-label sets
(and so how many label sets there are), and which loss terms train the student on a
batch. Everything else — sampling, the optimiser, the mean teacher, checkpoints — is the
loop's business and is the same for every row. A new ablation is a new subclass plus a
params entry.

Loss of the paper (Eq. 10): L = alpha * (L_cls + lambda * L_tri) + gamma * sum_j L_tri^{P_j}.
When the Fusion Module is trained (``model.fm_mode`` ``paper`` or ``eq5_line2``) the LF²
variant adds ``fm_loss_weight * sum_j softmax_triplet(FM_j(F^{P_j}, phi_teacher), y_j)``:
the only way a loss can reach FM's weights (see docs/method-choices.md).

This module is also the REGISTRY of the Table II rows: a variant class carries its name,
display label, table order, which features it clusters and whether it has a row per M_t;
:func:`register` adds one. The rows of a params file (``lf2.config.rows_for``), the CLI's
choices, the tables, the figures and the bench derive from :data:`VARIANTS`. Importing this
module imports no torch (``lf2 --help`` and the Snakefile stay light).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lf2.errors import ParamsError

if TYPE_CHECKING:
    from torch import Tensor

    from lf2.settings import FinetuneSettings

#: what :meth:`FinetuneTrainer.extract` can compute beyond the teacher's global features
FEATURES = ("teacher_parts", "student_parts")


@dataclass(frozen=True)
class LossWeights:
    alpha: float = 1.0
    lambda_tri: float = 0.5
    gamma: float = 0.5
    fm_loss_weight: float = 0.5
    margin: float = 0.3
    label_smoothing: float = 0.0
    global_triplet: str = "hard"

    @classmethod
    def from_settings(cls, ft: FinetuneSettings) -> LossWeights:
        return cls(
            alpha=ft.alpha, lambda_tri=ft.lambda_tri, gamma=ft.gamma,
            fm_loss_weight=ft.fm_loss_weight, margin=ft.margin,
            label_smoothing=ft.label_smoothing, global_triplet=ft.global_triplet,
        )


@dataclass
class EpochFeatures:
    """Features of every target training image, extracted once per epoch (eval mode).

    The ``FEATURES`` a variant does not list in ``Variant.features`` stay empty lists.
    """

    teacher_global: Tensor          # (N, C) pooled teacher map, phi^{P_0}
    teacher_global_bn: Tensor       # (N, C) the same after BNNeck: the classifier's input space
    teacher_parts: list[Tensor]     # K x (N, C) pooled teacher stripes ("teacher_parts")
    student_parts: list[Tensor]     # K x (N, C) pooled student stripes F^{P_j} ("student_parts")


class Variant:
    """One Table II row type. Class attributes are the registry entry:

    ``name`` (CLI and row name), ``label`` (display name; ``{m}`` is M_t), ``short_label``
    (figure column titles), ``order`` (place in
    the tables), ``features`` (extra :data:`FEATURES` its clustering needs), ``per_clusters``
    (one row per ``rows.clusters`` value, named ``<name>_m<M>``, instead of one row at
    ``rows.ablation_clusters``), ``trains`` (False: no fine-tuning run, e.g. Direct transfer),
    ``in_figures`` (shown in the t-SNE and Grad-CAM figures), ``default_row`` (in Table II
    unless ``rows.variants`` says otherwise), ``true_labels`` (its one label set is the
    target's true training identities instead of clusters: the supervised reference only).
    """

    name: str = ""
    label: str = ""
    short_label: str = ""  # column titles of the Grad-CAM figure
    order: int = 100
    features: frozenset[str] = frozenset()
    per_clusters: bool = False
    trains: bool = True
    in_figures: bool = False
    default_row: bool = True
    supplementary: bool = False  # tabled apart from Table II (table2.md's supplementary table)
    true_labels: bool = False
    set_names: tuple[str, ...] = ("global",)
    uses_fusion: bool = False

    def __init__(self, num_parts: int) -> None:
        self.num_parts = num_parts

    @property
    def num_sets(self) -> int:
        return len(self.set_names)

    @classmethod
    def display(cls, clusters: int | None) -> str:
        return cls.label.format(m=clusters)

    @classmethod
    def row_name(cls, clusters: int | None) -> str:
        """The Table II row: ``<name>_m<M>`` for a row per M_t, else ``<name>``."""
        return f"{cls.name}_m{clusters}" if cls.per_clusters else cls.name

    def needs_teacher_in_step(self, fusion) -> bool:
        return False

    def fusion_mode(self, configured: str) -> str:
        """The Fusion Module's mode for this variant (``model.fm_mode`` unless it fixes one)."""
        return configured

    def cluster_features(self, feats: EpochFeatures, fusion) -> list[Tensor]:
        raise NotImplementedError

    def loss_terms(self, out, labels: list[Tensor], sets: Collection[int], w: LossWeights,
                   teacher_global: Tensor | None = None, fusion=None) -> dict[str, Tensor]:
        """Unweighted loss terms for the label sets in ``sets`` (all of them with shared
        sampling; one per batch with per-label sampling). Weighting is :meth:`total`."""
        from lf2 import losses

        terms: dict[str, Tensor] = {}
        if 0 in sets:
            terms["cls"] = losses.cross_entropy(out.logits, labels[0], label_smoothing=w.label_smoothing)
            if w.global_triplet == "softmax":
                terms["tri"] = losses.softmax_triplet(out.global_feat, labels[0])
            else:
                terms["tri"] = losses.batch_hard_triplet(out.global_feat, labels[0], margin=w.margin)
        return terms

    @staticmethod
    def total(terms: dict[str, Tensor], w: LossWeights) -> Tensor:
        weights = {"cls": w.alpha, "tri": w.alpha * w.lambda_tri}
        total = None
        for name, value in terms.items():
            if name in weights:
                weight = weights[name]
            elif name.startswith("part_tri"):
                weight = w.gamma
            elif name.startswith("fm"):
                weight = w.fm_loss_weight
            else:
                raise KeyError(name)
            total = value * weight if total is None else total + value * weight
        assert total is not None, "no loss term"
        return total


class Direct(Variant):
    """Direct transfer: the source pre-training checkpoint, evaluated without fine-tuning."""

    name = "direct"
    label = "Direct transfer"
    short_label = "DT"
    order = 0
    trains = False
    in_figures = True

    def cluster_features(self, feats: EpochFeatures, fusion) -> list[Tensor]:
        raise ParamsError("the direct row does not fine-tune")


class Baseline(Variant):
    """Mean teacher; only the teacher's global feature is clustered; L_cls + lambda L_tri."""

    name = "baseline"
    label = "Baseline (only L_ReID^t)"
    short_label = "Baseline"
    order = 10
    in_figures = True

    def __init__(self, num_parts: int) -> None:
        super().__init__(num_parts)
        self.set_names = ("global",)

    def cluster_features(self, feats: EpochFeatures, fusion) -> list[Tensor]:
        return [feats.teacher_global]


class PartVariant(Variant):
    """Shared by the two part-based rows: K+1 label sets and the experts' softmax-triplets.

    With shared sampling a batch drawn on y_0 may hold images that are DBSCAN outliers
    (label -1) in another label set; they are not a class of their own, and the triplet
    losses leave samples labelled < 0 out of the mining (``losses.hardest_pairs``).
    """

    def loss_terms(self, out, labels, sets, w, teacher_global=None, fusion=None):
        from lf2 import losses

        terms = super().loss_terms(out, labels, sets, w)
        for j in range(1, self.num_parts + 1):
            if j in sets:
                terms[f"part_tri{j}"] = losses.softmax_triplet(out.expert_feats[j - 1], labels[j])
        return terms


class NoFM(PartVariant):
    """LF² w/o FM: the teacher's map split into stripes; [global, stripe_1..K] clustered."""

    name = "no_fm"
    label = "LF² w/o FM"
    short_label = "LF² w/o FM"
    order = 20
    features = frozenset({"teacher_parts"})

    def __init__(self, num_parts: int) -> None:
        super().__init__(num_parts)
        self.set_names = ("global",) + tuple(f"part{j}" for j in range(1, num_parts + 1))

    def cluster_features(self, feats: EpochFeatures, fusion) -> list[Tensor]:
        return [feats.teacher_global, *feats.teacher_parts]


class LF2(PartVariant):
    """Full LF²: student stripes fused with the teacher's global map by FM (Eq. 5)."""

    name = "lf2"
    label = "LF² (M_t = {m})"
    short_label = "LF²"
    order = 30
    features = frozenset({"student_parts"})
    per_clusters = True
    in_figures = True
    uses_fusion = True

    def __init__(self, num_parts: int) -> None:
        super().__init__(num_parts)
        self.set_names = ("global",) + tuple(f"fused{j}" for j in range(1, num_parts + 1))

    def needs_teacher_in_step(self, fusion) -> bool:
        return fusion is not None and fusion.trainable

    def cluster_features(self, feats: EpochFeatures, fusion) -> list[Tensor]:
        import torch

        with torch.no_grad():
            fused = fusion(feats.student_parts, feats.teacher_global)
        return [feats.teacher_global, *fused]

    def loss_terms(self, out, labels, sets, w, teacher_global=None, fusion=None):
        from lf2 import losses

        terms = super().loss_terms(out, labels, sets, w)
        if fusion is not None and fusion.trainable:
            if teacher_global is None:
                raise RuntimeError("the trained Fusion Module needs the teacher's global feature")
            g = teacher_global.detach()  # the teacher is an EMA, never trained by gradient
            for j in range(1, self.num_parts + 1):
                if j in sets:
                    fused = fusion[j - 1](out.part_feats[j - 1], g)
                    terms[f"fm{j}"] = losses.softmax_triplet(fused, labels[j])
        return terms


class NoFMStripe(NoFM):
    """FM ablation: LF² w/o FM plus LF²'s extra stripe term, on the UNFUSED stripes.

    ``fm_loss_weight * sum_j softmax_triplet(F^{P_j}_student, y_j)``: the same loss, weight and
    labels as LF²'s FM term, with FM_j taken out. Against ``no_fm`` it isolates the extra
    stripe supervision; against ``lf2`` (paper mode) it isolates clustering on fused features
    with the FM in the loss path, the supervision being matched.
    """

    name = "no_fm_stripe"
    label = "LF² w/o FM + stripe loss (unfused)"
    short_label = "w/o FM + stripe loss"
    order = 40
    default_row = False
    supplementary = True

    def loss_terms(self, out, labels, sets, w, teacher_global=None, fusion=None):
        from lf2 import losses

        terms = super().loss_terms(out, labels, sets, w)
        for j in range(1, self.num_parts + 1):
            if j in sets:  # named fm<j> so that it carries fm_loss_weight, like LF²'s term
                terms[f"fm{j}"] = losses.softmax_triplet(out.part_feats[j - 1], labels[j])
        return terms


class LF2FrozenFM(LF2):
    """FM ablation: LF² with FM frozen at its random initialisation, so no FM term.

    Against ``no_fm`` it isolates clustering on (fixed, randomly) fused features, with no
    extra supervision; against ``lf2`` (paper mode) it isolates training FM (its loss term
    and a learned rather than random fusion). One row, at ``rows.ablation_clusters``."""

    name = "lf2_fm_frozen"
    label = "LF² with FM frozen at init"
    short_label = "LF² FM frozen"
    order = 41
    per_clusters = False
    in_figures = False
    default_row = False
    supplementary = True

    def fusion_mode(self, configured: str) -> str:
        return "released"


class Supervised(Baseline):
    """The supervised reference (not UDA; the upper bound UDA papers quote): Baseline's loop
    from the same pre-trained model, but its one label set is the target's TRUE training
    identities (the manifest pids), never clustered. Evaluated on the same test split."""

    name = "supervised"
    label = "Supervised (target's true labels)"
    short_label = "Supervised"
    order = 90
    true_labels = True


#: the registry: every row type by name, in table order (``register`` keeps it sorted)
VARIANTS: dict[str, type[Variant]] = {}


def register(cls: type[Variant]) -> type[Variant]:
    """Add a variant class to the registry (usable as a class decorator); returns it."""
    if not cls.name or not cls.label or not cls.short_label:
        raise ValueError(f"variant {cls.__name__} needs a name, a label and a short_label")
    unknown = set(cls.features) - set(FEATURES)
    if unknown:
        raise ValueError(f"variant {cls.name}: unknown features {sorted(unknown)}; known: {FEATURES}")
    if cls.name in VARIANTS and VARIANTS[cls.name] is not cls:
        raise ValueError(f"variant {cls.name!r} is registered twice")
    VARIANTS[cls.name] = cls
    ordered = sorted(VARIANTS.values(), key=lambda v: (v.order, v.name))
    VARIANTS.clear()
    VARIANTS.update((v.name, v) for v in ordered)
    return cls


def unregister(name: str) -> None:
    """Remove a variant (tests that register a temporary one)."""
    VARIANTS.pop(name, None)


for _cls in (Direct, Baseline, NoFM, LF2, NoFMStripe, LF2FrozenFM, Supervised):
    register(_cls)


def variant_class(name: str) -> type[Variant]:
    if name not in VARIANTS:
        raise ParamsError(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def trained_variants() -> list[str]:
    """Names of the variants that have a fine-tuning run (the ``lf2 finetune --variant`` choices)."""
    return [n for n, v in VARIANTS.items() if v.trains]


def make_variant(name: str, num_parts: int) -> Variant:
    cls = variant_class(name)
    if not cls.trains:
        raise ParamsError(f"variant {name!r} does not fine-tune; expected one of "
                          f"{', '.join(trained_variants())}")
    return cls(num_parts)
