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
