import json
import os

import numpy as np
import pytest

from tag_tf.utils.io import atomic_directory, atomic_path, read_json, write_json_atomic


def test_write_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "sub" / "a.json")
    write_json_atomic(path, {"x": 1})
    write_json_atomic(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    assert os.listdir(tmp_path / "sub") == ["a.json"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = str(tmp_path / "a.json")
    write_json_atomic(path, {"x": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"x": np.float32(1.0)})  # not JSON serialisable
    assert json.load(open(path)) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_atomic_directory_replaces_the_old_folder_whole(tmp_path):
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "old.png").write_text("old")
    with atomic_directory(str(folder)) as tmp:
        assert not (folder / "new.html").exists()  # nothing shows before the block ends
        open(os.path.join(tmp, "new.html"), "w").write("new")
    assert os.listdir(folder) == ["new.html"]
    assert os.listdir(tmp_path) == ["report"]


def test_failed_atomic_directory_keeps_the_old_folder_and_no_temporary(tmp_path):
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "old.png").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(str(folder)) as tmp:
        open(os.path.join(tmp, "half.html"), "w").write("half")
        raise RuntimeError("interrupted")
    assert os.listdir(folder) == ["old.png"]
    assert os.listdir(tmp_path) == ["report"]


def test_failed_atomic_path_leaves_no_file(tmp_path):
    path = str(tmp_path / "plot.png")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        open(tmp, "w").write("half")
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    os.mkdir(tmp_path / "plain")
    open(tmp_path / "plain.txt", "w").close()
    with atomic_directory(str(tmp_path / "report")):
        pass
    with atomic_path(str(tmp_path / "a.txt")) as tmp:
        open(tmp, "w").close()
    assert os.stat(tmp_path / "report").st_mode == os.stat(tmp_path / "plain").st_mode
    assert os.stat(tmp_path / "a.txt").st_mode == os.stat(tmp_path / "plain.txt").st_mode
