import json
import os

import numpy as np
import pytest

from tag_tf.io import read_json, write_json_atomic


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
