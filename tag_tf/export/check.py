"""Check a SavedModel version directory the way TF Serving will use it, before anyone serves it.

`check_version_dir(path, reference)` loads the version through TensorFlow's C API exactly as TF
Serving does (`tag_tf.export.c_api.SavedModelSession`: `TF_LoadSessionFromSavedModel` with the tag
`serve`, then `TF_SessionRun` on the tensor names of each SignatureDef), runs every signature on
sample inputs made from its SignatureDef (floats in [0, 1), integers, PNG images for string
inputs), compares the answers with `reference(signature, inputs)` (the Keras networks, for
`export_multihead`; Python's `tf.saved_model.load` when no reference is given), and replays
`assets.extra/tf_serving_warmup_requests` through the session, as TF Serving does on load.
Any failure raises `ExportCheckError` naming the version directory and what failed.

>>> import tempfile, numpy as np, tensorflow as tf
>>> class Double(tf.Module):
...     @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
...     def __call__(self, x):
...         return {"y": 2 * x}
>>> path = tempfile.mkdtemp()
>>> tf.saved_model.save(Double(), path, signatures=Double().__call__)
>>> report = check_version_dir(path, reference=lambda signature, inputs: {"y": 2 * inputs["x"]})
>>> report.max_abs_error, report.warmup_requests
({'serving_default': 0.0}, 0)
>>> check_version_dir(path, reference=lambda signature, inputs: {"y": 3 * inputs["x"]})
Traceback (most recent call last):
...
tag_tf.export.check.ExportCheckError: ... signature 'serving_default', output 'y': answers through the C API differ from the reference by up to ...
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from tag_tf.export.c_api import CApiError, SavedModelSession

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit (saved_model_warmup_util)
SAMPLE_IMAGE_SIZE = (12, 10)  # height, width of the PNGs fed to string inputs (any size decodes)

Reference = Callable[[str, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


class ExportCheckError(ValueError):
    """A version directory that TF Serving could not load or that answers wrongly."""


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What `check_version_dir` checked.

    Attributes:
      path: the version directory.
      reference: "given" (a reference function) or "tf.saved_model.load".
      max_abs_error: signature -> largest |C API answer - reference| over its outputs.
      warmup_requests: warmup records replayed through the C API.
    """

    path: str
    reference: str
    max_abs_error: dict[str, float]
    warmup_requests: int


def check_version_dir(path: str, reference: Reference | None = None, *, batch: int = 3, atol: float = 1e-5,
                      seed: int = 0, samples=None) -> CheckReport:
    """Load `path` through the C API, run and compare every signature, replay the warmup requests.

    Args:
      path: a SavedModel version directory.
      reference: (signature name, {input: array}) -> {output: array}, the answers expected; None
        compares with the signatures of `tf.saved_model.load(path)`.
      batch: the sample batch size.
      atol: the largest absolute difference accepted.
      seed: seeds the sample inputs.
      samples: (signature name, SignatureDef, batch, rng) -> {input: array}, the sample inputs of
        a signature; None: `sample_inputs` for every signature.

    Raises ExportCheckError naming the directory, the signature and output when anything fails.
    """
    try:
        session = SavedModelSession(path)
    except CApiError as error:
        raise ExportCheckError(f"{path}: TF Serving's loader (C API, tag 'serve') fails: {error.message}") from None
    with session:
        if not session.signature_defs:
            raise ExportCheckError(f"{path}: the SavedModel has no serving signatures.")
        label = "given" if reference is not None else "tf.saved_model.load"
        reference = reference or python_loader_reference(path)
        errors = {}
        rng = np.random.default_rng(seed)
        for name, signature in sorted(session.signature_defs.items()):
            inputs = samples(name, signature, batch, rng) if samples else sample_inputs(signature, batch, rng)
            got = _run(session, path, name, inputs)
            errors[name] = _compare(path, name, got, reference(name, inputs), atol)
        requests = warmup_requests(path)
        for i, request in enumerate(requests):
            _run(session, path, request.model_spec.signature_name or "serving_default",
                 {k: tf.make_ndarray(v) for k, v in request.inputs.items()}, f"warmup request {i}: ")
    return CheckReport(path, label, errors, len(requests))


def _run(session: SavedModelSession, path: str, signature: str, inputs, context: str = "") -> dict[str, np.ndarray]:
    try:
        return session.run(signature, inputs)
    except (CApiError, ValueError) as error:
        raise ExportCheckError(f"{path}: {context}signature {signature!r} fails through the C API: {error}") from None


def _compare(path: str, signature: str, got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray],
             atol: float) -> float:
    """The largest |got - want|; ExportCheckError for other keys, shapes, non-finite or distant values."""
    if sorted(got) != sorted(want):
        raise ExportCheckError(f"{path}: signature {signature!r} outputs {sorted(got)}; the reference has {sorted(want)}.")
    worst = 0.0
    for key in sorted(want):
        a, b = np.asarray(got[key]), np.asarray(want[key])
        if a.shape != b.shape:
            raise ExportCheckError(f"{path}: signature {signature!r}, output {key!r}: shape {list(a.shape)} "
                                   f"through the C API, {list(b.shape)} in the reference.")
        if a.dtype == object or b.dtype == object:
            if not np.array_equal(a, b):
                raise ExportCheckError(f"{path}: signature {signature!r}, output {key!r}: strings differ.")
            continue
        if not np.all(np.isfinite(a)):
            raise ExportCheckError(f"{path}: signature {signature!r}, output {key!r}: non-finite answers.")
        error = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
        if not error <= atol:
            raise ExportCheckError(f"{path}: signature {signature!r}, output {key!r}: answers through the C API "
                                   f"differ from the reference by up to {error:.3g} (atol {atol:g}).")
        worst = max(worst, error)
    return worst


def sample_inputs(signature, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs for a SignatureDef: unknown dimensions become `batch`; floats uniform in [0, 1),
    integers in [0, 10), booleans, and PNG images of random pixels for strings.

    >>> from tensorflow.core.protobuf import meta_graph_pb2
    >>> signature = meta_graph_pb2.SignatureDef()
    >>> signature.inputs["x"].dtype = tf.float32.as_datatype_enum
    >>> _ = signature.inputs["x"].tensor_shape.dim.add(size=-1), signature.inputs["x"].tensor_shape.dim.add(size=4)
    >>> sample_inputs(signature, 2, np.random.default_rng(0))["x"].shape
    (2, 4)
    """
    inputs = {}
    for key, info in signature.inputs.items():
        dtype = tf.dtypes.as_dtype(info.dtype)
        shape = [batch if d.size < 0 else d.size for d in info.tensor_shape.dim]
        if info.tensor_shape.unknown_rank:
            shape = [batch]
        if dtype == tf.string:
            pixels = rng.integers(0, 256, (int(np.prod(shape)), *SAMPLE_IMAGE_SIZE, 3), dtype=np.uint8)
            inputs[key] = np.array([tf.io.encode_png(p).numpy() for p in pixels], dtype=object).reshape(shape)
        elif dtype.is_floating:
            inputs[key] = rng.random(shape).astype(dtype.as_numpy_dtype)
        elif dtype.is_bool:
            inputs[key] = rng.random(shape) < 0.5
        elif dtype.is_integer:
            inputs[key] = rng.integers(0, 10, shape).astype(dtype.as_numpy_dtype)
        else:
            raise ExportCheckError(f"Input {key!r} has dtype {dtype.name}, for which no sample is made "
                                   "(floats, integers, booleans, strings).")
    return inputs


def python_loader_reference(path: str) -> Reference:
    """A reference from Python's object-graph loader: the same SavedModel, the other load path."""
    signatures = tf.saved_model.load(path).signatures

    def reference(name, inputs):
        outputs = signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    return reference


def warmup_requests(path: str) -> list:
    """The PredictRequests of a version's `assets.extra/tf_serving_warmup_requests` ([] without
    the file). ExportCheckError for an unreadable file, more than 1000 records (TF Serving's
    limit) or a record that is not a predict log."""
    from tensorflow_serving.apis import prediction_log_pb2

    file = os.path.join(path, WARMUP_FILE)
    if not os.path.exists(file):
        return []
    try:
        records = list(tf.data.TFRecordDataset(file).as_numpy_iterator())
    except tf.errors.OpError as error:
        raise ExportCheckError(f"{file}: not a TFRecord file: {error.message}") from None
    if len(records) > MAX_WARMUP_RECORDS:
        raise ExportCheckError(f"{file} holds {len(records)} records; TF Serving replays at most {MAX_WARMUP_RECORDS}.")
    requests = []
    for i, record in enumerate(records):
        try:
            log = prediction_log_pb2.PredictionLog.FromString(record)
        except Exception as error:  # protobuf's DecodeError
            raise ExportCheckError(f"{file}: record {i} is not a PredictionLog: {error}") from None
        if log.WhichOneof("log_type") != "predict_log":
            raise ExportCheckError(f"{file}: record {i} is a {log.WhichOneof('log_type')}; only predict logs are written here.")
        requests.append(log.predict_log.request)
    return requests
