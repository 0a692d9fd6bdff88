"""load_tfds over tfds' real `celeb_a` builder, offline: tfds.testing.mock_data replaces its examples."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tag_tf.data import celeba

FEATURES = tfds.builder("celeb_a").info.features
ATTRIBUTES, LANDMARKS = FEATURES["attributes"].keys(), FEATURES["landmarks"].keys()


def known_examples(num_examples):
    """Examples with a known pattern: attribute Smiling = i odd, Young = i % 3 == 0, image value i."""
    examples = []
    for i in range(num_examples):
        attributes = {name: False for name in ATTRIBUTES}
        attributes.update(Smiling=i % 2 == 1, Young=i % 3 == 0)
        examples.append({
            "image": np.full((218, 178, 3), 10 * i, np.uint8),
            "attributes": attributes,
            "landmarks": {k: np.int64(0) for k in LANDMARKS},
            "identity": {"Identity_No": np.int64(i)},
        })
    return examples


def test_load_tfds_yields_the_folder_loader_structure_from_mocked_celeb_a(tmp_path):
    examples = known_examples(5)

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_generator(
            lambda: iter(examples),
            output_signature=self.info.features.get_tensor_spec(),
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        ds = celeba.load_tfds(["Smiling", "Young"], "train", image_size=16, data_dir=str(tmp_path))
        elements = list(ds.as_numpy_iterator())
    assert len(elements) == 5
    for i, (image, labels) in enumerate(elements):
        assert image.shape == (16, 16, 3) and image.dtype == np.float32
        np.testing.assert_allclose(image, 10 * i / 255, atol=1e-5)
        assert labels["Smiling"].dtype == np.int32
        assert (int(labels["Smiling"]), int(labels["Young"])) == (i % 2, int(i % 3 == 0))
    assert ds.element_spec[0].shape == (16, 16, 3)


def test_load_tfds_random_mock_data_has_binary_labels(tmp_path):
    with tfds.testing.mock_data(num_examples=3):
        ds = celeba.load_tfds(["Male", "Wearing_Hat"], "test", image_size=8, data_dir=str(tmp_path))
        for image, labels in ds.as_numpy_iterator():
            assert image.shape == (8, 8, 3) and 0 <= image.min() and image.max() <= 1
            assert set(labels) == {"Male", "Wearing_Hat"}
            assert all(int(v) in (0, 1) for v in labels.values())


def test_load_tfds_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown CelebA attribute\(s\) \['Happy'\]; valid attributes: \['5_o_Clock"):
        celeba.load_tfds(["Happy"], data_dir=str(tmp_path))
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "list_attr_celeba.txt").write_text("0\n")
    with pytest.raises(FileNotFoundError, match=r"lacks \['img_align_celeba.zip', 'list_eval_partition.txt'"):
        celeba.load_tfds(["Male"], data_dir=str(tmp_path), manual_dir=str(tmp_path / "manual"))
    with pytest.raises(ValueError, match="Unknown split"):
        celeba.load_tfds(["Male"], split="training", data_dir=str(tmp_path))
