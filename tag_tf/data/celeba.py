"""CelebA as tf.data: from the official folder layout, or through the tfds `celeb_a` builder.

Both loaders yield the same unbatched elements, so every later stage is agnostic of the source:

    (image float32 [S, S, 3] in [0, 1], {task_name: int32 label 0/1})

Images are resized to `S x S` without cropping (the official TAG CelebA code does the same:
`tf.image.resize(image, [64, 64])` on the 178x218 aligned faces).

The official folder layout (also that of `../shared/data/celeba_sample`):

    <path>/img_align_celeba/000001.jpg ...
    <path>/list_attr_celeba.txt          line 1: count, line 2: 40 attribute names,
                                         then "<file> <40 values of -1/1>" per image
    <path>/list_eval_partition.txt       optional: "<file> <0|1|2>" (train|validation|test)

Without a partition file the images are split 80/10/10 by a permutation drawn from `seed`.

Example:

    from tag_tf.data import celeba
    train = celeba.load_folder("../shared/data/celeba_sample", ["Smiling", "Young"], "train")
    image, labels = next(iter(train))      # image [64, 64, 3], labels {"Smiling": 0|1, ...}
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

import numpy as np
import tensorflow as tf

from tag_tf.tasks import Task, as_tasks

SPLITS = ("train", "validation", "test")
IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# Files the tfds `celeb_a` builder looks for, by these names, in `manual_dir`.
TFDS_MANUAL_FILES = (
    "img_align_celeba.zip",
    "list_attr_celeba.txt",
    "list_eval_partition.txt",
    "list_landmarks_align_celeba.txt",
    "identity_CelebA.txt",
)


@dataclasses.dataclass(frozen=True)
class AttributeTable:
    """The parsed `list_attr_celeba.txt`: file names, attribute names, labels in {0, 1}."""

    files: tuple[str, ...]
    attributes: tuple[str, ...]
    labels: np.ndarray  # int32 [num_files, num_attributes]

    def column(self, name: str) -> np.ndarray:
        return self.labels[:, self.attributes.index(name)]


def read_attributes(path: str) -> AttributeTable:
    """Parse an official `list_attr_celeba.txt`; -1/1 become 0/1.

    Raises ValueError naming the file and line of a malformed row.
    """
    with open(path) as f:
        lines = f.read().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and an attribute-name line, found {len(lines)} lines.")
    attributes = tuple(lines[1].split())
    files, rows = [], []
    for line_number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        values = fields[1:]
        if len(values) != len(attributes) or any(v not in ("-1", "1") for v in values):
            raise ValueError(
                f"{path}, line {line_number}: malformed attribute row {line.strip()!r}: expected a file "
                f"name and {len(attributes)} values of -1 or 1."
            )
        files.append(fields[0])
        rows.append([v == "1" for v in values])
    labels = np.asarray(rows, dtype=np.int32).reshape(len(rows), len(attributes))
    return AttributeTable(tuple(files), attributes, labels)


def read_partition(path: str) -> dict[str, int]:
    """Parse `list_eval_partition.txt` into {file: 0|1|2}."""
    partition = {}
    with open(path) as f:
        for line_number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(
                    f"{path}, line {line_number}: malformed partition row {line.strip()!r}: expected "
                    f"'<file> <0|1|2>'."
                )
            partition[fields[0]] = int(fields[1])
    return partition


def split_indices(num_files: int, split: str, seed: int) -> np.ndarray:
    """Deterministic 80/10/10 split of range(num_files) by `seed`, sorted within a split.

    >>> [len(split_indices(100, s, seed=0)) for s in SPLITS]
    [80, 10, 10]
    """
    order = np.random.default_rng(seed).permutation(num_files)
    bounds = np.cumsum([0] + [round(f * num_files) for f in SPLIT_FRACTIONS])
    bounds[-1] = num_files
    part = SPLITS.index(split)
    return np.sort(order[bounds[part] : bounds[part + 1]])


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """JPEG/PNG bytes -> float32 [S, S, 3] in [0, 1], resized (not cropped) to S x S."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    return resize_image(image, image_size)


def resize_image(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """uint8 [H, W, 3] -> float32 [S, S, 3] in [0, 1]; any H, W; aspect ratio is not kept."""
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.clip_by_value(image, 0.0, 1.0)


def load_folder(
    path: str,
    tasks: Iterable[Task | str],
    split: str = "train",
    image_size: int = 64,
    seed: int = 0,
) -> tf.data.Dataset:
    """CelebA from the official folder layout, as an unbatched, lazily decoded tf.data.Dataset.

    Args:
      path: folder with `img_align_celeba/`, `list_attr_celeba.txt` and optionally
        `list_eval_partition.txt`.
      tasks: CelebA attribute names (or binary `Task`s named after them).
      split: one of `SPLITS`.
      image_size: side of the square output images.
      seed: seed of the 80/10/10 split, used only when there is no partition file.

    Returns:
      Elements `(image float32 [S, S, 3] in [0, 1], {task: int32 0/1})`, in file order.
    """
    tasks = as_tasks(tasks)
    _check_split(split)
    _check_image_size(image_size)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"CelebA folder {path!r} does not exist.")
    attr_path = os.path.join(path, ATTR_FILE)
    image_dir = os.path.join(path, IMAGE_DIR)
    for required in (attr_path, image_dir):
        if not os.path.exists(required):
            raise FileNotFoundError(f"{required} is missing: {path!r} is not in the official CelebA layout.")
    table = read_attributes(attr_path)
    _check_attribute_tasks(tasks, table.attributes)

    partition_path = os.path.join(path, PARTITION_FILE)
    if os.path.exists(partition_path):
        partition = read_partition(partition_path)
        part = SPLITS.index(split)
        indices = np.array([i for i, f in enumerate(table.files) if partition.get(f) == part], dtype=np.int64)
    else:
        indices = split_indices(len(table.files), split, seed)

    files = [table.files[i] for i in indices]
    _check_images_exist(image_dir, files)
    paths = [os.path.join(image_dir, f) for f in files]
    labels = {t.name: table.column(t.name)[indices] for t in tasks}

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(
        lambda p, y: (decode_and_resize(tf.io.read_file(p), image_size), y),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_tfds(
    tasks: Iterable[Task | str],
    split: str = "train",
    image_size: int = 64,
    data_dir: str | None = None,
    manual_dir: str | None = None,
) -> tf.data.Dataset:
    """CelebA through the tfds `celeb_a` builder, with the same elements as `load_folder`.

    Google Drive, where tfds downloads CelebA from, often refuses (quota). Download the files
    yourself and pass their folder as `manual_dir`; tfds then uses them instead of downloading.
    `manual_dir` must hold, with these names: img_align_celeba.zip, list_attr_celeba.txt,
    list_eval_partition.txt, list_landmarks_align_celeba.txt, identity_CelebA.txt.
    (The official folder layout, unzipped, is read directly by `load_folder`.)

    Args:
      tasks: CelebA attribute names (or binary `Task`s named after them).
      split: one of `SPLITS`.
      image_size: side of the square output images.
      data_dir: tfds data directory (default: tfds' own, `~/tensorflow_datasets`).
      manual_dir: folder of pre-downloaded CelebA files, see above.
    """
    import tensorflow_datasets as tfds  # slow import; only this loader needs it

    tasks = as_tasks(tasks)
    _check_split(split)
    _check_image_size(image_size)
    builder = tfds.builder("celeb_a", data_dir=data_dir)
    _check_attribute_tasks(tasks, tuple(builder.info.features["attributes"].keys()))
    if manual_dir is not None:
        missing = [f for f in TFDS_MANUAL_FILES if not os.path.exists(os.path.join(manual_dir, f))]
        if missing:
            raise FileNotFoundError(
                f"manual_dir {manual_dir!r} lacks {missing}; tfds' celeb_a needs all of {list(TFDS_MANUAL_FILES)}."
            )
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    names = [t.name for t in tasks]

    def to_element(example):
        labels = {n: tf.cast(example["attributes"][n], tf.int32) for n in names}
        return resize_image(example["image"], image_size), labels

    dataset = dataset.map(to_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; valid splits: {SPLITS}.")


def _check_image_size(image_size: int) -> None:
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}.")


def _check_attribute_tasks(tasks: list[Task], attributes: tuple[str, ...]) -> None:
    unknown = [t.name for t in tasks if t.name not in attributes]
    if unknown:
        raise ValueError(f"Unknown CelebA attribute(s) {unknown}; valid attributes: {list(attributes)}.")
    not_binary = [t.name for t in tasks if t.kind != "binary"]
    if not_binary:
        raise ValueError(f"CelebA attributes are binary, but tasks {not_binary} are not kind='binary'.")


def _check_images_exist(image_dir: str, files: list[str]) -> None:
    present = {entry.name for entry in os.scandir(image_dir)}
    missing = [f for f in files if f not in present]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) listed in {ATTR_FILE} are missing from {image_dir}, "
            f"first: {missing[:5]}."
        )
