"""Atomic file output: a reader never sees a half-written artifact.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "out.json")
>>> write_json_atomic(path, {"tasks": ["a", "b"]})
>>> read_json(path)
{'tasks': ['a', 'b']}
>>> folder = os.path.join(os.path.dirname(path), "report")
>>> with atomic_directory(folder) as tmp:
...     open(os.path.join(tmp, "index.html"), "w").write("<p>hi</p>")
9
>>> os.listdir(folder)
['index.html']
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid

TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.(tmp|old)")  # what _beside makes


def _beside(path: str, suffix: str) -> str:
    """A fresh hidden name in `path`'s folder (made if missing); nothing is created under it, so
    whatever is written there gets the usual permissions."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}{suffix}")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary file path beside `path`; when the block succeeds the file is renamed onto
    `path`, when it fails the temporary file is removed and `path` keeps what it held."""
    tmp = _beside(path, ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_directory(path: str):
    """Yields an empty temporary folder beside `path`; when the block succeeds it replaces the
    folder `path` (whatever that held), when it fails it is removed and `path` is left as it was."""
    tmp = _beside(path, ".tmp")
    os.mkdir(tmp)
    try:
        yield tmp
        if os.path.exists(path):
            old = _beside(path, ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


@contextlib.contextmanager
def exclusive_folder(folder: str, lock_name: str = ".lock"):
    """Holds an exclusive lock on `folder` (an flock on its hidden file `lock_name`; made if
    missing) for the block, after removing the temporaries (`atomic_path`, `atomic_directory`)
    that a killed writer left there: while the lock is held no other writer's are in progress.
    The operating system releases the lock when its process dies, however it dies.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> os.mkdir(os.path.join(folder, ".1.0123456789ab.tmp"))   # left by a killed writer
    >>> with exclusive_folder(folder):
    ...     sorted(os.listdir(folder))
    ['.lock']
    """
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, lock_name), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            remove_temporaries(folder)
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_temporaries(folder: str) -> list[str]:
    """Remove the temporary files and folders of atomic writes in `folder`; returns their names.
    Call it only while no writer is working there (see `exclusive_folder`)."""
    removed = sorted(name for name in os.listdir(folder) if TEMPORARY_NAME.fullmatch(name))
    for name in removed:
        path = os.path.join(folder, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    return removed


def write_json_atomic(path: str, data) -> None:
    """Write `data` as indented JSON to a temporary file beside `path`, then rename it onto `path`."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


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
