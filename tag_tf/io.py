"""Atomic file output: a reader never sees a half-written artifact.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "out.json")
>>> write_json_atomic(path, {"tasks": ["a", "b"]})
>>> read_json(path)
{'tasks': ['a', 'b']}
"""

from __future__ import annotations

import json
import os
import tempfile


def write_json_atomic(path: str, data) -> None:
    """Write `data` as indented JSON to a temporary file beside `path`, then rename it onto `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_model_atomic(model, path: str) -> None:
    """`model.save(path)` (a .keras file) through a temporary file in the same folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path[: -len(".keras")] + ".tmp.keras"
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)
