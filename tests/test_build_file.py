"""BUILD (Starlark, which parses as Python) must cover every module, entry point and test, name
only files that exist, and declare every dependency the code imports: in-repo modules as targets,
third-party packages as pip requirements that requirements files pin.

BUILD is written from the tree by this file (`python tests/test_build_file.py`, after adding,
moving or re-importing a module): a package whose __init__.py imports its own modules is one
py_library (its modules import each other through it, and Bazel allows no cycles); any other
module is its own target, named after its path ("tag_tf/data/celeba.py" -> "data_celeba",
"serving/client.py" -> "serving_client"). A file with a `__main__` block is a py_binary;
tests/**/test_*.py are py_tests run through tests/pytest_main.py, with tests/conftest.py.
"""

import ast
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = {"py_library", "py_binary", "py_test"}
SOURCE_DIRS = ("tag_tf", "serving", "experiments")
INTERNAL = ("tag_tf", "serving", "experiments", "tests")
# import name -> pip distribution name
PIP_NAMES = {
    "absl": "absl-py", "grpc": "grpcio", "h5py": "h5py", "hypothesis": "hypothesis", "google.protobuf": "protobuf", "keras": "keras",
    "matplotlib": "matplotlib", "numpy": "numpy", "PIL": "pillow", "pytest": "pytest", "scipy": "scipy",
    "tensorflow": "tensorflow", "tensorflow_datasets": "tensorflow-datasets",
    "tensorflow_serving": "tensorflow-serving-api", "tf_keras_vis": "tf-keras-vis",
}


def literal(node):
    """A Starlark literal: strings, lists, and requirement("pkg") as "@pip//pkg"."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "requirement":
        return "@pip//" + node.args[0].value
    if isinstance(node, ast.List):
        return [literal(e) for e in node.elts]
    return ast.literal_eval(node)


def targets():
    tree = ast.parse(open(os.path.join(REPO, "BUILD")).read(), "BUILD")
    result = []
    for node in tree.body:
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) in RULES:
            result.append({"rule": call.func.id, **{k.arg: literal(k.value) for k in call.keywords}})
    return result


def python_files(directory):
    for root, _, files in os.walk(os.path.join(REPO, directory)):
        for name in files:
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(root, name), REPO)


def imported_modules(path):
    """Absolute module names imported by a file (`from a import b` gives a.b and a)."""
    tree = ast.parse(open(os.path.join(REPO, path)).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = helper_module(node.module)
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def helper_module(module):
    """A helper module of tests/ (pytest puts tests/ on sys.path: `from affinity_reference import ...`)
    by its repository name, `tests.<module>`; any other module unchanged."""
    helper = os.path.join(REPO, "tests", module.split(".")[0] + ".py")
    return f"tests.{module}" if os.path.exists(helper) else module


def module_file(module):
    """The repository file of an internal module name, or None."""
    base = os.path.join(REPO, *module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.exists(candidate):
            return os.path.relpath(candidate, REPO)
    return None


def pinned_requirements():
    names = set()
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in open(os.path.join(REPO, file)):
            match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*==", line)
            if match:
                names.add(match.group(1).lower())
    return names


def test_target_names_are_unique_and_sources_exist():
    names = [t["name"] for t in targets()]
    assert len(names) == len(set(names)), "duplicate target names"
    for target in targets():
        for src in target.get("srcs", []):
            assert os.path.exists(os.path.join(REPO, src)), f"{target['name']} names missing file {src}"
        if "main" in target:
            assert target["main"] in target["srcs"]


def test_every_module_and_entry_point_has_a_target():
    covered = {src: t for t in targets() for src in t.get("srcs", [])}
    for directory in SOURCE_DIRS:
        for path in python_files(directory):
            assert path in covered, f"{path} has no BUILD target"
            if 'if __name__ == "__main__":' in open(os.path.join(REPO, path)).read():
                assert covered[path]["rule"] == "py_binary", f"{path} is an entry point: make it a py_binary"


def test_every_test_file_has_a_py_test():
    tests = {src: t for t in targets() if t["rule"] == "py_test" for src in t["srcs"]}
    for path in python_files("tests"):
        if os.path.basename(path).startswith("test_"):
            assert path in tests, f"{path} has no py_test"
            assert tests[path]["name"] == os.path.basename(path)[:-3]


def test_every_import_is_a_declared_dependency():
    owner = {src: t["name"] for t in targets() for src in t.get("srcs", [])}
    pinned = pinned_requirements()
    for target in targets():
        deps = set(target.get("deps", []))
        for src in target.get("srcs", []):
            for module in imported_modules(src):
                top = module.split(".")[0]
                if top in INTERNAL:
                    path = module_file(module)
                    if path and owner.get(path) != target["name"]:
                        assert f":{owner[path]}" in deps, f"{target['name']}: {src} imports {module}; add ':{owner[path]}'"
                elif top not in sys.stdlib_module_names and top != "__future__":
                    parts = module.split(".")
                    prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
                    pip = next((PIP_NAMES[p] for p in prefixes if p in PIP_NAMES), None)
                    assert pip, f"{src} imports {module}: add it to PIP_NAMES in this test"
                    assert pip in pinned, f"{pip} (imported by {src}) is not pinned in requirements"
                    assert f"@pip//{pip}" in deps, f"{target['name']}: {src} imports {module}; add requirement(\"{pip}\")"


HEADER = """# Bazel targets for every module, entry point and test, written by tests/test_build_file.py from the
# imports; tests/test_build_file.py keeps it honest. Tests run through pytest (tests/pytest_main.py).
# Offline Bazel cannot fetch rules here (see DESIGN.md), so CI runs pytest.

load("@pip//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_binary", "py_library", "py_test")
"""


def is_entry_point(path: str) -> bool:
    return 'if __name__ == "__main__":' in open(os.path.join(REPO, path)).read()


def bundled_package(path: str) -> str | None:
    """The package folder whose __init__.py imports its own modules, if `path` is in one."""
    folder = os.path.dirname(path)
    init = os.path.join(REPO, folder, "__init__.py")
    if not os.path.exists(init):
        return None
    package = folder.replace("/", ".")
    tree = ast.parse(open(init).read())
    own = any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith(package + ".") for n in tree.body)
    return folder if own else None


def target_name(path: str) -> str:
    package = bundled_package(path)
    stem = package if package else path[: -len(".py")].removesuffix("/__init__")
    if stem.startswith("tests/"):
        return os.path.basename(stem)
    if stem == "tag_tf":
        return "tag_tf"
    return stem.removeprefix("tag_tf/").replace("/", "_")


def dependencies(name: str, sources: list[str], owner: dict[str, str]) -> list[str]:
    internal, pip = set(), set()
    for src in sources:
        for module in imported_modules(src):
            top = module.split(".")[0]
            if top in ("tag_tf", "serving", "experiments", "tests"):
                path = module_file(module)
                if path and owner.get(path) not in (None, name):
                    internal.add(owner[path])
            elif top not in sys.stdlib_module_names and top != "__future__":
                parts = module.split(".")
                prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
                pip.add(next(PIP_NAMES[p] for p in prefixes if p in PIP_NAMES))
    return [f'":{d}"' for d in sorted(internal)] + [f'requirement("{p}")' for p in sorted(pip)]


def rule(kind: str, fields: list[tuple[str, str]], deps: list[str]) -> str:
    lines = [f"{kind}("] + [f"    {key} = {value}," for key, value in fields]
    if deps:
        lines += ["    deps = ["] + [f"        {d}," for d in deps] + ["    ],"]
    return "\n".join(lines + [")"])


def build_file() -> str:
    files = sorted(p for d in (*SOURCE_DIRS, "tests") for p in python_files(d) if not p.endswith("pytest_main.py"))
    files = [p for p in files if not p.endswith("test_build_file.py")] + ["tests/test_build_file.py"]
    owner = {p: target_name(p) for p in files}
    targets: dict[str, list[str]] = {}
    for path in files:
        targets.setdefault(owner[path], []).append(path)
    rules = []
    for name, sources in targets.items():
        sources = sorted(sources, key=lambda p: (not p.endswith("__init__.py"), p))
        runner = ["tests/pytest_main.py"] if name.startswith("test_") else []
        deps = dependencies(name, sources + runner, owner)
        srcs = f'["{sources[0]}"]' if len(sources) == 1 else "[\n" + "".join(f'        "{s}",\n' for s in sources) + "    ]"
        if name.startswith("test_"):
            fields = [("name", f'"{name}"'), ("srcs", f'["{sources[0]}", "tests/pytest_main.py"]'),
                      ("main", '"tests/pytest_main.py"'), ("args", f'["$(location {sources[0]})"]'),
                      ("size", '"medium"')]
            rules.append(rule("py_test", fields, sorted(set(deps) | {'":conftest"'}, key=deps_order)))
        elif len(sources) == 1 and is_entry_point(sources[0]):
            rules.append(rule("py_binary", [("name", f'"{name}"'), ("srcs", srcs), ("main", f'"{sources[0]}"')], deps))
        else:
            fields = [("name", f'"{name}"'), ("srcs", srcs)] + ([("testonly", "True")] if name == "conftest" else [])
            rules.append(rule("py_library", fields, deps))
    return HEADER + "\n" + "\n\n".join(rules) + "\n"


def deps_order(dep: str):
    return (dep.startswith("requirement"), dep)


def test_build_file_is_what_the_imports_say():
    assert open(os.path.join(REPO, "BUILD")).read() == build_file(), "BUILD is stale: run `python tests/test_build_file.py`"


def test_build_file_is_what_the_imports_say():
    assert open(os.path.join(REPO, "BUILD")).read() == build_file(), "BUILD is stale: run `python tests/test_build_file.py`"


if __name__ == "__main__":
    with open(os.path.join(REPO, "BUILD"), "w") as f:
        f.write(build_file())
    print(f"wrote {os.path.join(REPO, 'BUILD')}")
