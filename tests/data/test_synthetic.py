import numpy as np
import pytest

from tag_tf.data import synthetic


def labels_of(dataset):
    labels = [y for _, y in dataset.as_numpy_iterator()]
    return {k: np.array([y[k] for y in labels]) for k in labels[0]}


def test_labels_agree_with_latent_factors():
    data = synthetic.planted_groups(num_groups=2, tasks_per_group=3, num_examples=200, image_size=8, seed=3)
    names = [t.name for t in data.tasks]
    for split, dataset in data.splits.items():
        labels = labels_of(dataset)
        for j, name in enumerate(names):
            expected = (data.latents[split] @ data.directions[j] > data.thresholds[j]).astype(np.int32)
            np.testing.assert_array_equal(labels[name], expected)


def test_tasks_read_only_their_groups_factors():
    data = synthetic.planted_groups(num_groups=3, tasks_per_group=2, num_examples=10, image_size=8,
                                    factors_per_group=2, num_nuisance=2)
    assert data.groups == [["g0_t0", "g0_t1"], ["g1_t0", "g1_t1"], ["g2_t0", "g2_t1"]]
    for j in range(6):
        group = j // 2
        nonzero = np.flatnonzero(data.directions[j])
        assert set(nonzero) <= {2 * group, 2 * group + 1}
        assert np.linalg.norm(data.directions[j]) == pytest.approx(1.0, abs=1e-6)


def test_within_group_labels_correlate_more_than_across_groups():
    data = synthetic.planted_groups_tabular(num_groups=3, tasks_per_group=3, num_examples=4000, seed=1)
    labels = labels_of(data.splits["train"])
    corr = np.abs(np.corrcoef(np.stack([labels[t.name] for t in data.tasks])))
    group_of = {name: g for g, group in enumerate(data.groups) for name in group}
    names = [t.name for t in data.tasks]
    within = [corr[i, j] for i in range(9) for j in range(9) if i != j and group_of[names[i]] == group_of[names[j]]]
    across = [corr[i, j] for i in range(9) for j in range(9) if group_of[names[i]] != group_of[names[j]]]
    assert min(within) > 0.2 > 0.06 > max(across)


def test_same_seed_same_data_other_seed_other_data():
    def first_images(seed):
        data = synthetic.planted_groups(num_examples=50, image_size=8, seed=seed)
        return np.stack([x for x, _ in data.splits["train"].take(5).as_numpy_iterator()])

    np.testing.assert_array_equal(first_images(7), first_images(7))
    assert not np.allclose(first_images(7), first_images(8))


def test_images_and_features_shapes_and_splits():
    images = synthetic.planted_groups(num_groups=2, tasks_per_group=2, num_examples=100, image_size=12)
    x, _ = next(iter(images.splits["test"]))
    assert x.shape == (12, 12, 3) and 0.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 1.0
    assert float(x.numpy().std()) > 0.01
    assert images.input_name == "image"
    assert {s: int(d.cardinality()) for s, d in images.splits.items()} == {"train": 80, "validation": 10, "test": 10}
    table = synthetic.planted_groups_tabular(num_groups=2, tasks_per_group=2, num_examples=100, num_features=7)
    x, labels = next(iter(table.splits["train"]))
    assert x.shape == (7,) and table.input_name == "features" and len(labels) == 4


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="num_groups must be a positive integer, got 0"):
        synthetic.planted_groups(num_groups=0)
    with pytest.raises(ValueError, match="num_features"):
        synthetic.planted_groups_tabular(num_features=-3)
