"""The examples in the docstrings run and print what they say; every module has one."""

import doctest
import importlib
import pkgutil

import pytest

import serving
import tag_tf

MODULES = sorted(m.name for package in (tag_tf, serving)
                 for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".") if not m.ispkg)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no runnable docstring example"
    assert result.failed == 0
