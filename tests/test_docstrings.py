"""The examples in the docstrings run and print what they say (modules and packages alike)."""

import doctest
import importlib
import pkgutil

import pytest

import serving
import tag_tf

MODULES = sorted({package.__name__ for package in (tag_tf, serving)}
                 | {m.name for package in (tag_tf, serving)
                    for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")})


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    if not result.attempted:
        pytest.skip(f"{name} has no docstring example")
    assert result.failed == 0
