"""Data sources yielding `(input, {task_name: label})` elements: CelebA, planted synthetic data, rendered
scenes with dense labels (`scenes`) and NYUv2 (`nyuv2`)."""

from tag_tf.data import scenes
