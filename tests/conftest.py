"""Shared test setup: quiet TensorFlow logs, seeded runs, and the CelebA sample (skipped if absent)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELEBA_SAMPLE = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "celeba_sample"))


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)


@pytest.fixture
def celeba_sample():
    """Path of the real CelebA sample; the test is skipped when the folder is missing."""
    if not os.path.isdir(os.path.join(CELEBA_SAMPLE, "img_align_celeba")):
        pytest.skip(f"CelebA sample not found at {CELEBA_SAMPLE}")
    return CELEBA_SAMPLE


class TinyMultihead:
    """Two tiny image networks over tasks a (binary), b (3 classes), c (regression), d (binary);
    both have a "c" head, network 1 serves it. For the export and serving tests."""

    image_size = 16
    groups = [("a", "b", "c"), ("c", "d")]
    assignment = {"a": 0, "b": 0, "c": 1, "d": 1}

    def __init__(self, seed: int = 0):
        from tag_tf.models import build_multitask_model, celeba_resnet_trunk
        from tag_tf.tasks import Task

        self.tasks = [Task("a"), Task("b", "multiclass", num_classes=3), Task("c", "regression"), Task("d")]
        by_name = {t.name: t for t in self.tasks}
        keras.utils.set_random_seed(seed)
        self.networks = [build_multitask_model(celeba_resnet_trunk(self.image_size, filters=4),
                                               [by_name[t] for t in group], name=f"net{i}")
                         for i, group in enumerate(self.groups)]

    def images(self, n: int, seed: int = 0):
        import numpy as np

        return np.random.default_rng(seed).random((n, self.image_size, self.image_size, 3)).astype("float32")

    @staticmethod
    def answers(network, task, x):
        """A head's answer straight from its Keras network: sigmoid, softmax or the value."""
        import tensorflow as tf

        output = network.predict(x, verbose=0)[task.name]
        if task.kind == "binary":
            return tf.sigmoid(output[:, 0]).numpy()
        if task.kind == "multiclass":
            return tf.nn.softmax(output).numpy()
        return output[:, 0]

    def expected(self, x) -> dict:
        """Every task's answer from the network serving it."""
        return {t.name: self.answers(self.networks[self.assignment[t.name]], t, x) for t in self.tasks}

    def export(self, base: str, name: str = "m", **kwargs) -> str:
        from tag_tf.export import export_multihead

        return export_multihead(self.networks, self.assignment, base, name, **kwargs)


@pytest.fixture(scope="session")
def tiny_multihead():
    return TinyMultihead()
