"""The examples in the docstrings run and print what they say; every module has one."""

import doctest
import importlib
import pkgutil

import pytest

import tag_tf

MODULES = sorted(m.name for m in pkgutil.walk_packages(tag_tf.__path__, "tag_tf.") if not m.ispkg)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no runnable docstring example"
    assert result.failed == 0
