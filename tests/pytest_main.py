"""Entry point of the Bazel py_test targets: runs pytest on the test files passed as arguments."""

import sys

import pytest

if __name__ == "__main__":
    sys.exit(pytest.main(sys.argv[1:]))
