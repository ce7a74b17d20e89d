"""Fidelity to the paper and the released code: classifier rows across re-clustering,
the teacher's own BatchNorm statistics."""

from __future__ import annotations

import numpy as np
import torch

from lf2.train.common import RandomImages
from lf2.train.finetune import FinetuneTrainer
from lf2.train.variants import make_variant
from tests.conftest import tiny_params


def _trainer(tmp_path, variant: str = "baseline", clusters: int = 4, num_images: int = 32, **finetune):
    params = tiny_params(tmp_path, finetune=finetune)
    device = torch.device("cpu")
    images = RandomImages(params, device, num_images, 0.0)
    v = make_variant(variant, params["model"]["num_parts"])
    return FinetuneTrainer(params, v, clusters, images, None, device)


def test_kept_classifier_rows_follow_their_clusters(tmp_path):
    """reinit_classifier: false keeps rows; a relabelled clustering is matched back first."""
    tr = _trainer(tmp_path, reinit_classifier=False)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 8)
    feats = np.eye(4, tr.student.out_channels, dtype=np.float32)[y] + 0.01 * rng.standard_normal(
        (32, tr.student.out_channels)).astype(np.float32)
    tr.set_labels([y, y, y], feats)
    rows = tr.student.classifier.weight.detach().clone()
    perm = np.array([2, 0, 3, 1])
    tr.set_labels([perm[y], perm[y], perm[y]], feats)
    np.testing.assert_array_equal(tr.label_sets[0], y)  # the global set got the old ids back
    assert torch.equal(tr.student.classifier.weight, rows)  # rows kept, now for the right clusters


def test_reinit_classifier_takes_new_ids_as_they_come(tmp_path):
    tr = _trainer(tmp_path, reinit_classifier=True)
    y = np.repeat(np.arange(4), 8)
    feats = np.eye(4, tr.student.out_channels, dtype=np.float32)[y]
    tr.set_labels([y, y, y], feats)
    perm = np.array([2, 0, 3, 1])
    tr.set_labels([perm[y]] * 3, feats)
    np.testing.assert_array_equal(tr.label_sets[0], perm[y])
    # the rows are the centroids of the new ids: row perm[c] is the unit vector e_c
    w = tr.student.classifier.weight.detach().numpy()
    np.testing.assert_allclose(w[perm, :4], np.eye(4), atol=1e-6)
