"""TF Serving's REST JSON formats, as pure functions shared by the dev server and the client.

A predict request names its tensors in one of two ways (never both):

    {"signature_name": "...", "instances": [...]}   row format: one entry per example; with a single
                                                    input a bare value, else {input: value}
    {"signature_name": "...", "inputs": {...}}      columnar: {input: batch value}, or a bare value
                                                    for a single input

Binary strings travel as {"b64": "<base64>"}; NaN and infinite floats as the JSON tokens NaN,
Infinity and -Infinity (outside RFC 8259, but TF Serving reads and writes them: its REST API
guide's "JSON conformance"), in requests and answers alike. The answer mirrors the request: row
requests get {"predictions": [...]} (per example: a bare value for a single output, else
{output: value}), columnar requests get {"outputs": {...}} (a bare value for a single output).
Errors are {"error": "<message>"} with a 4xx/5xx status; `BadRequest` is the 400 kind.

>>> import numpy as np
>>> body = {"instances": [{"image_bytes": {"b64": "aGk="}}, {"image_bytes": {"b64": "aG8="}}]}
>>> inputs, row = parse_predict_request(body, {"image_bytes": np.dtype(object)})
>>> inputs["image_bytes"].tolist(), row
([b'hi', b'ho'], True)
>>> predict_response({"a": np.array([0.5, 1.0]), "b": np.array([[1, 2], [3, 4]])}, row=True)
{'predictions': [{'a': 0.5, 'b': [1, 2]}, {'a': 1.0, 'b': [3, 4]}]}
>>> inputs, _ = parse_predict_request(loads(b'{"inputs": [NaN, -Infinity]}', 4), {"x": np.dtype("float32")})
>>> json.dumps(predict_response({"y": 2 * inputs["x"]}, row=False))
'{"outputs": [NaN, -Infinity]}'
"""

from __future__ import annotations

import base64
import json
import re
from typing import Mapping

import numpy as np

JSON_ESCAPE = re.compile(rb"\\.", re.DOTALL)
JSON_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone
NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')
NESTING_STEP = np.zeros(256, np.int64)
NESTING_STEP[list(b"[{")], NESTING_STEP[list(b"]}")] = 1, -1


class BadRequest(ValueError):
    """A request the server cannot read (HTTP 400, gRPC INVALID_ARGUMENT)."""


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count),
    without parsing it: a body too deep to parse safely is refused before parsing.

    >>> json_depth(b'{"instances": [[1, 2], [3]], "s": "[[["}'), json_depth(b"3")
    (3, 0)
    """
    if b"\\" in data:
        data = JSON_ESCAPE.sub(b"", data)
    structure = JSON_STRING.sub(b"", data.translate(None, NOT_STRUCTURE))
    return int(np.cumsum(NESTING_STEP[np.frombuffer(structure, np.uint8)]).max(initial=0))


def loads(data: bytes, max_depth: int):
    """A request body as JSON; BadRequest for invalid JSON, nesting deeper than `max_depth` or an
    object with a duplicate key (which JSON parsers resolve differently: refused, not guessed).

    >>> loads(b'{"instances": [1]}', max_depth=4)
    {'instances': [1]}
    >>> loads(b'{"inputs": 1, "inputs": 2}', max_depth=4)
    Traceback (most recent call last):
    ...
    serving.rest_api.BadRequest: JSON Parse error: duplicate key 'inputs' in an object.
    """
    depth = json_depth(data)
    if depth > max_depth:
        raise BadRequest(f"JSON Parse error: the body nests {depth} levels deep; the limit is {max_depth}.")
    try:
        return json.loads(data, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise BadRequest(f"JSON Parse error: {error}") from None


def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise BadRequest(f"JSON Parse error: duplicate key {key!r} in an object.")
        result[key] = value
    return result


def parse_predict_request(body, dtypes: Mapping[str, np.dtype]) -> tuple[dict[str, np.ndarray], bool]:
    """({input: array}, row format?) from a decoded JSON body and the signature's input dtypes
    (numpy dtypes; `object` for strings). Raises BadRequest naming what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest(f"The request body must be a JSON object, got {type(body).__name__}.")
    present = [key for key in ("instances", "inputs") if key in body]
    if len(present) != 1:
        raise BadRequest("The request must have exactly one of 'instances' (row format) or 'inputs' "
                         f"(columnar format); got {present or sorted(body)}.")
    names = list(dtypes)
    if present == ["instances"]:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest("'instances' must be a non-empty list, one entry per example.")
        if len(names) == 1 and not any(_is_named(i) for i in instances):
            columns = {names[0]: instances}
        else:
            if not all(_is_named(i) for i in instances):
                raise BadRequest(f"Each instance must be a value of the single input or an object with keys {names}.")
            for instance in instances:
                _check_names(set(instance), names)
            columns = {name: [i[name] for i in instances] for name in names}
    else:
        inputs = body["inputs"]
        if _is_named(inputs):
            columns = inputs
        elif len(names) == 1:
            columns = {names[0]: inputs}
        else:
            raise BadRequest(f"'inputs' must be an object with keys {names}.")
        _check_names(set(columns), names)
    arrays = {name: to_array(name, columns[name], dtypes[name]) for name in names}
    for name, array in arrays.items():
        if array.ndim and not len(array):
            raise BadRequest(f"Input {name!r}: an empty batch; give at least one example.")
    return arrays, present == ["instances"]


def _is_named(value) -> bool:
    """An object of named tensors (not a {"b64": ...} string)."""
    return isinstance(value, dict) and set(value) != {"b64"}


def _check_names(given: set, names: list[str]) -> None:
    if given != set(names):
        raise BadRequest(f"The signature's inputs are {names}; the request has {sorted(given)}.")


def to_array(name: str, value, dtype: np.dtype) -> np.ndarray:
    """A JSON value as an array of `dtype` (strings and {"b64"} objects become bytes for `object`).

    >>> to_array("x", [[1, 2]], np.dtype("float32")).dtype.name
    'float32'
    >>> try:
    ...     to_array("x", ["a", 1.5], np.dtype("float32"))
    ... except BadRequest as error:
    ...     print(error)
    Input 'x': expected numbers (float32), got strings.
    """
    dtype = np.dtype(dtype)
    if dtype == object:
        strings = _map_leaves(value, _to_bytes(name))
        array = np.array(strings, dtype=object)
        if any(not isinstance(v, bytes) for v in array.reshape(-1)):
            raise BadRequest(f"Input {name!r}: expected strings or {{'b64': ...}} objects of one shape.")
        return array
    try:
        array = np.array(value)
    except ValueError:
        array = np.array(None)  # ragged nesting
    numeric = {"f": "biuf", "i": "biu", "u": "bu", "b": "b"}[dtype.kind]
    if array.dtype.kind not in numeric or array.dtype == object:
        kind = "numbers" if dtype.kind == "f" else "integers" if dtype.kind in "iu" else "booleans"
        got = {"O": "a ragged or mixed value", "U": "strings", "f": "floats", "i": "integers",
               "b": "booleans"}.get(array.dtype.kind, array.dtype.name)
        raise BadRequest(f"Input {name!r}: expected {kind} ({dtype.name}), got {got}.")
    with np.errstate(over="ignore"):  # out-of-range numbers become ±inf, passed on like NaN and Infinity
        return array.astype(dtype)


def _to_bytes(name: str):
    def convert(leaf):
        if isinstance(leaf, dict):
            if set(leaf) != {"b64"} or not isinstance(leaf["b64"], str):
                raise BadRequest(f"Input {name!r}: an object in a tensor must be {{'b64': '<base64>'}}, got keys {sorted(leaf)}.")
            try:
                return base64.b64decode(leaf["b64"], validate=True)
            except ValueError:
                raise BadRequest(f"Input {name!r}: 'b64' is not valid base64.") from None
        if isinstance(leaf, str):
            return leaf.encode()
        raise BadRequest(f"Input {name!r}: expected strings or {{'b64': ...}} objects, got {type(leaf).__name__}.")
    return convert


def _map_leaves(value, fn):
    if isinstance(value, list):
        return [_map_leaves(v, fn) for v in value]
    return fn(value)


def predict_response(outputs: Mapping[str, np.ndarray], row: bool) -> dict:
    """The JSON answer to a predict request (see the module docstring)."""
    values = {name: to_json_value(name, np.asarray(array)) for name, array in outputs.items()}
    if not row:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    sizes = {name: len(np.asarray(array)) for name, array in outputs.items()}
    if len(set(sizes.values())) > 1:
        raise BadRequest(f"Outputs of different batch sizes {sizes} cannot be returned in row format; "
                         "use 'inputs' (columnar).")
    rows = range(next(iter(sizes.values())))
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{name: value[i] for name, value in values.items()} for i in rows]}


def to_json_value(name: str, array: np.ndarray):
    """Nested lists; bytes become {"b64": ...} (TF Serving: always for outputs named *_bytes,
    and for any string that is not UTF-8)."""
    if array.dtype != object and array.dtype.kind != "S":
        return array.tolist()

    def encode(leaf):
        if not name.endswith("_bytes"):
            try:
                return leaf.decode()
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(leaf).decode()}

    return _map_leaves(array.tolist(), encode)


def request_body(inputs: Mapping[str, np.ndarray], row: bool, signature_name: str | None = None) -> dict:
    """The JSON body of a predict request for `inputs` (bytes as {"b64": ...}), row or columnar.

    >>> request_body({"x": np.array([[1.0], [2.0]])}, row=True)
    {'instances': [{'x': [1.0]}, {'x': [2.0]}]}
    """
    values = {name: _map_leaves(np.asarray(a).tolist(), _b64_leaf) for name, a in inputs.items()}
    body = {"signature_name": signature_name} if signature_name else {}
    if not row:
        return {**body, "inputs": values}
    sizes = {len(v) for v in values.values()}
    if len(sizes) != 1:
        raise ValueError(f"Row format needs inputs of one batch size, got {sorted(sizes)}.")
    return {**body, "instances": [{name: v[i] for name, v in values.items()} for i in range(sizes.pop())]}


def _b64_leaf(leaf):
    return {"b64": base64.b64encode(leaf).decode()} if isinstance(leaf, bytes) else leaf


def parse_predict_response(body: Mapping, output_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """{output: array} from a predict answer (either format). A single unnamed output (a bare
    value) is named `output_names[0]`, else "output".

    >>> parse_predict_response({"predictions": [{"a": 0.5}, {"a": 1.0}]})
    {'a': array([0.5, 1. ])}
    """
    if "predictions" not in body and "outputs" not in body:
        raise ValueError(f"Not a predict answer: keys {sorted(body)}.")
    values = body.get("predictions", body.get("outputs"))
    if not named_outputs(body):
        values = {(output_names or ["output"])[0]: values}
    elif "predictions" in body:
        values = {name: [r[name] for r in values] for name in values[0]}
    return {name: np.array(_map_leaves(v, _from_b64)) for name, v in values.items()}


def named_outputs(body: Mapping) -> bool:
    """True when a predict answer names its outputs; False for a single output's bare value.

    >>> named_outputs({"predictions": [0.5, 0.7]}), named_outputs({"outputs": {"a": [0.5]}})
    (False, True)
    """
    if "predictions" in body:
        rows = body["predictions"]
        return isinstance(rows, list) and bool(rows) and all(_is_named(r) for r in rows)
    return _is_named(body.get("outputs"))


def _from_b64(leaf):
    return base64.b64decode(leaf["b64"]) if isinstance(leaf, dict) and "b64" in leaf else leaf
