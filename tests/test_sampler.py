"""PKSampler invariants."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lf2.data.sampler import PKSampler
from lf2.errors import LF2Error


def labels_with_outliers() -> np.ndarray:
    # label 0: 10 images, 1: 3 images, 2: a singleton, 3..7: 5 images each, -1: outliers
    lab = [0] * 10 + [1] * 3 + [2] + [-1] * 6
    for c in range(3, 8):
        lab += [c] * 5
    return np.random.default_rng(0).permutation(np.array(lab))


def test_batches_have_p_labels_times_k():
    labels = labels_with_outliers()
    s = PKSampler(labels, p=4, k=4, num_batches=25, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 25
    for b in batches:
        assert b.shape == (16,) and b.dtype.kind == "i"
        per_label = Counter(labels[b].tolist())
        assert len(per_label) == 4  # P distinct labels
        assert set(per_label.values()) == {4}  # K each
        assert min(per_label) >= 0  # outliers never sampled


def test_small_clusters_and_singletons_are_repeated():
    labels = labels_with_outliers()
    s = PKSampler(labels, p=8, k=4, num_batches=10, seed=1)  # every usable label in each batch
    singleton = int(np.flatnonzero(labels == 2)[0])
    three = set(np.flatnonzero(labels == 1).tolist())
    for b in s:
        assert (b == singleton).sum() == 4
        got = b[labels[b] == 1]
        assert set(got.tolist()) == three  # all three used, one repeated
        big = b[labels[b] == 0]
        assert len(set(big.tolist())) == 4  # enough images: no repeats


def test_outliers_never_sampled_even_when_many():
    labels = np.array([-1] * 500 + [0, 0, 1, 1, 2, 2])
    for b in PKSampler(labels, p=3, k=2, num_batches=50, seed=3):
        assert (b >= 500).all()


def test_every_label_visited_before_repeats():
    labels = np.repeat(np.arange(12), 4)
    s = PKSampler(labels, p=4, k=2, num_batches=3, seed=0)
    seen = np.concatenate([np.unique(labels[b]) for b in s])
    assert sorted(seen.tolist()) == list(range(12))


def test_deterministic_and_epoch_reseeds():
    labels = labels_with_outliers()
    a = [b.tolist() for b in PKSampler(labels, 4, 4, 8, seed=5)]
    b = [b.tolist() for b in PKSampler(labels, 4, 4, 8, seed=5)]
    assert a == b
    s = PKSampler(labels, 4, 4, 8, seed=5)
    assert [x.tolist() for x in s] == a  # iterating again repeats the epoch
    s.set_epoch(1)
    e1 = [x.tolist() for x in s]
    assert e1 != a
    assert [x.tolist() for x in PKSampler(labels, 4, 4, 8, seed=6)] != a


def test_too_few_labels_is_an_error_naming_the_count():
    labels = np.array([0, 0, 1, 1, -1, -1, -1])
    with pytest.raises(LF2Error, match="only 2 usable label"):
        PKSampler(labels, p=3, k=2, num_batches=1, seed=0)


def test_bad_arguments():
    with pytest.raises(LF2Error):
        PKSampler(np.zeros((2, 2)), 1, 1, 1)
    with pytest.raises(LF2Error):
        PKSampler(np.zeros(4), 0, 1, 1)


def test_works_as_torch_batch_sampler():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    labels = np.repeat(np.arange(6), 3)
    ds = TensorDataset(torch.arange(len(labels)), torch.as_tensor(labels))
    loader = DataLoader(ds, batch_sampler=PKSampler(labels, p=3, k=2, num_batches=4, seed=0))
    batches = list(loader)
    assert len(batches) == 4
    for idx, lab in batches:
        assert idx.shape == (6,) and len(torch.unique(lab)) == 3


def test_invariants_on_random_labels():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(
        labels=st.lists(st.integers(-1, 9), min_size=1, max_size=60),
        p=st.integers(1, 4), k=st.integers(1, 5), seed=st.integers(0, 2**31),
    )
    def check(labels, p, k, seed):
        labels = np.array(labels)
        usable = len(set(labels[labels >= 0].tolist()))
        if usable < p:
            with pytest.raises(LF2Error):
                PKSampler(labels, p, k, 3, seed)
            return
        for b in PKSampler(labels, p, k, 3, seed):
            got = Counter(labels[b].tolist())
            assert len(b) == p * k and len(got) == p
            assert set(got.values()) == {k} and min(got) >= 0

    check()
