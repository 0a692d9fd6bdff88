"""BUILD (Starlark, which parses as Python) must cover every module, entry point and test, name
only files that exist, and declare every dependency the code imports: in-repo modules as targets,
third-party packages as pip requirements that requirements files pin."""

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
    "absl": "absl-py", "grpc": "grpcio", "google.protobuf": "protobuf", "keras": "keras",
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
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


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
