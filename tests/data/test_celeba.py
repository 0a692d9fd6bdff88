import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tag_tf.data import celeba

SPECIFIC_IMAGES = ("000001.jpg", "000002.jpg", "000777.jpg", "009999.jpg")
TASKS = ["Smiling", "Young", "Eyeglasses", "Male"]


def parse_attribute_rows(path):
    """Independent parse of list_attr_celeba.txt: {file: {attribute: 0|1}}."""
    lines = open(path).read().split("\n")
    names = lines[1].split()
    rows = {}
    for line in lines[2:]:
        if line.strip():
            file, *values = line.split()
            rows[file] = {n: int(v == "1") for n, v in zip(names, values)}
    return rows


def split_files(folder, split, seed=0):
    table = celeba.read_attributes(os.path.join(folder, celeba.ATTR_FILE))
    return [table.files[i] for i in celeba.split_indices(len(table.files), split, seed)]


def test_labels_and_images_match_the_files(celeba_sample):
    rows = parse_attribute_rows(os.path.join(celeba_sample, "list_attr_celeba.txt"))
    ds = celeba.load_folder(celeba_sample, TASKS, "train", image_size=32)
    files = split_files(celeba_sample, "train")
    elements = list(ds.as_numpy_iterator())
    checked = 0
    for name in SPECIFIC_IMAGES:
        if name not in files:
            continue
        image, labels = elements[files.index(name)]
        assert {t: int(labels[t]) for t in TASKS} == {t: rows[name][t] for t in TASKS}
        raw = np.asarray(Image.open(os.path.join(celeba_sample, "img_align_celeba", name)), np.float32) / 255
        expected = tf.image.resize(raw, (32, 32), antialias=True).numpy()
        np.testing.assert_allclose(image, expected, atol=0.02)  # JPEG decoders differ slightly
        checked += 1
    assert checked >= 3


def test_labels_of_every_split_equal_the_attribute_file(celeba_sample):
    rows = parse_attribute_rows(os.path.join(celeba_sample, "list_attr_celeba.txt"))
    for split in celeba.SPLITS:
        labels = celeba.load_folder(celeba_sample, ["Smiling"], split, image_size=8).map(lambda x, y: y)
        got = [int(y["Smiling"]) for y in labels.as_numpy_iterator()]
        assert got == [rows[f]["Smiling"] for f in split_files(celeba_sample, split)]


def test_split_sizes_disjoint_and_deterministic(celeba_sample):
    splits = {s: set(split_files(celeba_sample, s)) for s in celeba.SPLITS}
    assert [len(splits[s]) for s in celeba.SPLITS] == [8000, 1000, 1000]
    assert not (splits["train"] & splits["validation"] or splits["train"] & splits["test"]
                or splits["validation"] & splits["test"])
    assert set(split_files(celeba_sample, "test", seed=0)) == splits["test"]
    assert set(split_files(celeba_sample, "test", seed=1)) != splits["test"]
    sizes = [sum(1 for _ in celeba.load_folder(celeba_sample, ["Male"], s, image_size=4)) for s in celeba.SPLITS]
    assert sizes == [8000, 1000, 1000]


def test_images_shape_dtype_range(celeba_sample):
    image, _ = next(iter(celeba.load_folder(celeba_sample, TASKS, "validation", image_size=64)))
    assert image.shape == (64, 64, 3) and image.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0
    assert float(tf.math.reduce_std(image)) > 0.05


def write_folder(root, images, rows, attributes=("Smiling", "Young"), partition=None):
    """A CelebA-layout folder with the given PIL images and -1/1 attribute rows."""
    os.makedirs(os.path.join(root, "img_align_celeba"))
    for name, image in images.items():
        image.save(os.path.join(root, "img_align_celeba", name))
    lines = [str(len(rows)), " ".join(attributes)] + [f"{n} " + " ".join(v) for n, v in rows.items()]
    open(os.path.join(root, "list_attr_celeba.txt"), "w").write("\n".join(lines) + "\n")
    if partition:
        open(os.path.join(root, "list_eval_partition.txt"), "w").write(
            "".join(f"{n} {p}\n" for n, p in partition.items()))
    return str(root)


def two_colour_image(width, height):
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2, 0] = 255
    pixels[:, width // 2 :, 2] = 255
    return Image.fromarray(pixels)


def test_non_square_image_is_resized_not_cropped(tmp_path):
    # 80 wide x 20 high: a centre crop to a square would keep only the middle 20 columns.
    names = ["a.png", "b.png", "c.png"]
    folder = write_folder(tmp_path, {n: two_colour_image(80, 20) for n in names},
                          {n: ["1", "-1"] for n in names}, partition={"a.png": 0, "b.png": 1, "c.png": 2})
    image, labels = next(iter(celeba.load_folder(folder, ["Smiling", "Young"], "train", image_size=16)))
    image = image.numpy()
    assert image.shape == (16, 16, 3)
    assert image[:, :6, 0].min() > 0.95 and image[:, :6, 2].max() < 0.05    # left stays red
    assert image[:, -6:, 2].min() > 0.95 and image[:, -6:, 0].max() < 0.05  # right stays blue
    assert (int(labels["Smiling"]), int(labels["Young"])) == (1, 0)


def test_partition_file_decides_the_splits(tmp_path):
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    partition = dict(zip(names, [2, 0, 1, 0, 2, 0]))
    rows = {n: ["1" if i % 2 else "-1", "1"] for i, n in enumerate(names)}
    folder = write_folder(tmp_path, {n: two_colour_image(12, 10) for n in names}, rows, partition=partition)
    smiling = {s: [int(y["Smiling"]) for _, y in celeba.load_folder(folder, ["Smiling"], s, 8).as_numpy_iterator()]
               for s in celeba.SPLITS}
    # train = files 2, 4, 6 (indices 1, 3, 5: odd, so Smiling=1); test = files 1, 5 (indices 0, 4)
    assert smiling == {"train": [1, 1, 1], "validation": [0], "test": [0, 0]}


@pytest.fixture
def small_folder(tmp_path):
    names = [f"{i:06d}.jpg" for i in range(1, 11)]
    return write_folder(tmp_path / "celeba", {n: two_colour_image(12, 10) for n in names},
                        {n: ["1", "-1"] for n in names})


def test_bad_inputs_raise_clear_errors(tmp_path, small_folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        celeba.load_folder(str(tmp_path / "nowhere"), ["Smiling"])
    with pytest.raises(ValueError, match=r"Unknown CelebA attribute\(s\) \['Smilling'\]; valid attributes: \['Smiling', 'Young'\]"):
        celeba.load_folder(small_folder, ["Smilling"])
    with pytest.raises(ValueError, match="empty"):
        celeba.load_folder(small_folder, [])
    with pytest.raises(ValueError, match="Duplicate"):
        celeba.load_folder(small_folder, ["Young", "Young"])
    with pytest.raises(ValueError, match=r"Unknown split 'dev'; valid splits"):
        celeba.load_folder(small_folder, ["Young"], split="dev")
    with pytest.raises(ValueError, match="image_size"):
        celeba.load_folder(small_folder, ["Young"], image_size=0)


def test_missing_attribute_file_and_missing_image(small_folder):
    os.remove(os.path.join(small_folder, "img_align_celeba", "000004.jpg"))
    with pytest.raises(FileNotFoundError, match=r"missing from .*first: \['000004.jpg'\]"):
        for split in celeba.SPLITS:
            celeba.load_folder(small_folder, ["Smiling"], split)
    os.remove(os.path.join(small_folder, "list_attr_celeba.txt"))
    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt is missing"):
        celeba.load_folder(small_folder, ["Smiling"])


def test_malformed_attribute_row_names_file_and_line(small_folder):
    path = os.path.join(small_folder, "list_attr_celeba.txt")
    lines = open(path).read().split("\n")
    lines[5] = "000004.jpg 1 0"  # 0 is not a CelebA value
    open(path, "w").write("\n".join(lines))
    with pytest.raises(ValueError, match=r"list_attr_celeba.txt, line 6: malformed attribute row"):
        celeba.load_folder(small_folder, ["Smiling"])
    lines[5] = "000004.jpg 1"  # too few values
    open(path, "w").write("\n".join(lines))
    with pytest.raises(ValueError, match=r"line 6: .*expected a file name and 2 values"):
        celeba.load_folder(small_folder, ["Smiling"])
