"""An image recipe whose trunk comes from `keras.applications`: MobileNetV3Small (weights=None)
with a two-layer head per task, on the CelebA sample (or any folder in the official layout).

    python -m experiments.tag_pipeline --recipe=experiments/recipes/celeba_mobilenet.py --run_dir=runs/mnet

Settings from the environment: CELEBA_DIR (default ../shared/data/celeba_sample beside the
repository), RECIPE_IMAGE_SIZE (default 64; at least 32).
"""

import os

import keras
from keras import layers

from tag_tf.data import celeba
from tag_tf.tasks import Task

TASKS = [Task(name) for name in ("Smiling", "Mouth_Slightly_Open", "Male", "No_Beard", "Wearing_Lipstick",
                                 "Heavy_Makeup")]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CELEBA_DIR = os.environ.get("CELEBA_DIR", os.path.join(REPO, "..", "shared", "data", "celeba_sample"))
IMAGE_SIZE = int(os.environ.get("RECIPE_IMAGE_SIZE", "64"))


def load_data() -> dict:
    return {split: celeba.load_folder(CELEBA_DIR, TASKS, split, image_size=IMAGE_SIZE) for split in celeba.SPLITS}


BATCH_NORM_MOMENTUM = 0.9


def build_model(tasks) -> keras.Model:
    """MobileNetV3Small (no pretrained weights, images in [0, 1]) -> Dense(32) -> one output per task.

    keras.applications builds MobileNetV3's batch normalisation with momentum 0.999, made for
    long ImageNet runs: after a few hundred steps its moving statistics are still mostly their
    initial values and inference-mode answers are poor. Trained from scratch for a few epochs here,
    the moving statistics use momentum BATCH_NORM_MOMENTUM instead.
    """
    image = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    trunk = keras.applications.MobileNetV3Small(input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), include_top=False,
                                                weights=None, pooling="avg", include_preprocessing=False)
    for layer in trunk.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BATCH_NORM_MOMENTUM
    features = trunk(image)
    outputs = {t.name: layers.Dense(t.output_units, name=f"{t.name}_head")(
        layers.Dense(32, activation="relu", name=f"{t.name}_hidden")(features)) for t in tasks}
    return keras.Model(image, outputs, name="celeba_mobilenet")


def optimizer() -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(1e-3)
