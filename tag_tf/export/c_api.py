"""A SavedModel loaded and run through TensorFlow's C API, the way TF Serving loads it.

TF Serving does not use Python's object-graph loader (`tf.saved_model.load`): it calls the C++
`LoadSavedModel` with the tag `serve` (a session with the graph, variables restored, init ops run)
and then runs a signature by feeding and fetching the tensor names its `SignatureDef` lists.
`SavedModelSession` does the same through the C API that the tensorflow wheel's
`libtensorflow_cc.so.2` exports (`TF_LoadSessionFromSavedModel`, `TF_SessionRun`), via ctypes.

>>> import tempfile, numpy as np, tensorflow as tf
>>> class Double(tf.Module):
...     @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
...     def __call__(self, x):
...         return {"y": 2 * x}
>>> path = tempfile.mkdtemp()
>>> module = Double()
>>> tf.saved_model.save(module, path, signatures=module.__call__)
>>> with SavedModelSession(path) as session:
...     print(sorted(session.signature_defs), session.run("serving_default", {"x": np.array([1.5], "float32")}))
['serving_default'] {'y': array([3.], dtype=float32)}
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

SERVE_TAG = "serve"
TSTRING_BYTES = 24  # sizeof(TF_TString)
TF_OK = 0
TF_STRING = tf.string.as_datatype_enum


class CApiError(RuntimeError):
    """A failed C API call: `code` (TF_Code, e.g. 3 INVALID_ARGUMENT, 5 NOT_FOUND) and the message."""

    def __init__(self, code: int, message: str):
        super().__init__(f"TF_Code {code}: {message}")
        self.code, self.message = code, message


class _Buffer(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t), ("data_deallocator", ctypes.c_void_p)]


class _Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


_SIGNATURES = {  # name: (restype, argtypes)
    "TF_NewStatus": (ctypes.c_void_p, []), "TF_DeleteStatus": (None, [ctypes.c_void_p]),
    "TF_GetCode": (ctypes.c_int, [ctypes.c_void_p]), "TF_Message": (ctypes.c_char_p, [ctypes.c_void_p]),
    "TF_NewGraph": (ctypes.c_void_p, []), "TF_DeleteGraph": (None, [ctypes.c_void_p]),
    "TF_NewSessionOptions": (ctypes.c_void_p, []), "TF_DeleteSessionOptions": (None, [ctypes.c_void_p]),
    "TF_NewBuffer": (ctypes.POINTER(_Buffer), []), "TF_DeleteBuffer": (None, [ctypes.POINTER(_Buffer)]),
    "TF_LoadSessionFromSavedModel": (ctypes.c_void_p, [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
        ctypes.c_void_p, ctypes.POINTER(_Buffer), ctypes.c_void_p]),
    "TF_CloseSession": (None, [ctypes.c_void_p, ctypes.c_void_p]),
    "TF_DeleteSession": (None, [ctypes.c_void_p, ctypes.c_void_p]),
    "TF_GraphOperationByName": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
    "TF_SessionRun": (None, [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_Output), ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
        ctypes.POINTER(_Output), ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
        ctypes.c_void_p, ctypes.c_void_p]),
    "TF_AllocateTensor": (ctypes.c_void_p, [ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_size_t]),
    "TF_DeleteTensor": (None, [ctypes.c_void_p]),
    "TF_TensorType": (ctypes.c_int, [ctypes.c_void_p]), "TF_NumDims": (ctypes.c_int, [ctypes.c_void_p]),
    "TF_Dim": (ctypes.c_int64, [ctypes.c_void_p, ctypes.c_int]),
    "TF_TensorByteSize": (ctypes.c_size_t, [ctypes.c_void_p]), "TF_TensorData": (ctypes.c_void_p, [ctypes.c_void_p]),
    "TF_StringInit": (None, [ctypes.c_void_p]),
    "TF_StringCopy": (None, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "TF_StringGetDataPointer": (ctypes.c_void_p, [ctypes.c_void_p]),
    "TF_StringGetSize": (ctypes.c_size_t, [ctypes.c_void_p]),
    "TF_StringDealloc": (None, [ctypes.c_void_p]),
}


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL:
    """The tensorflow wheel's `libtensorflow_cc.so.2` with the C API functions typed."""
    lib = ctypes.CDLL(os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2"))
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


class _Status:
    """A TF_Status; `check()` raises CApiError unless it is TF_OK."""

    def __init__(self):
        self.lib = library()
        self.pointer = self.lib.TF_NewStatus()

    def check(self, what: str) -> None:
        code = self.lib.TF_GetCode(self.pointer)
        if code != TF_OK:
            raise CApiError(code, f"{what}: {self.lib.TF_Message(self.pointer).decode(errors='replace')}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.lib.TF_DeleteStatus(self.pointer)


def tensor_name(name: str) -> tuple[str, int]:
    """A SignatureDef tensor name "op:index" as (op, index).

    >>> tensor_name("serving_default_image:0"), tensor_name("StatefulPartitionedCall:3"), tensor_name("x")
    (('serving_default_image', 0), ('StatefulPartitionedCall', 3), ('x', 0))
    """
    op, _, index = name.partition(":")
    return op, int(index or 0)


class SavedModelSession:
    """A SavedModel loaded with `TF_LoadSessionFromSavedModel` (tags `serve`); `run` feeds and
    fetches a signature's tensors by name, as TF Serving does.

    Attributes:
      meta_graph: the MetaGraphDef the loader returned.
      signature_defs: {name: SignatureDef} of its serving signatures (not the internal
        `__saved_model_init_op`, which TF Serving does not serve either).

    Raises CApiError when the SavedModel cannot be loaded (the C++ loader's message).
    """

    def __init__(self, export_dir: str, tags: tuple[str, ...] = (SERVE_TAG,)):
        self.lib = lib = library()
        self._graph = lib.TF_NewGraph()
        self._session = None
        options, meta = lib.TF_NewSessionOptions(), lib.TF_NewBuffer()
        tag_array = (ctypes.c_char_p * len(tags))(*[t.encode() for t in tags])
        try:
            with _Status() as status:
                self._session = lib.TF_LoadSessionFromSavedModel(
                    options, None, os.fsencode(export_dir), tag_array, len(tags), self._graph, meta, status.pointer)
                status.check(f"loading {export_dir} with tags {list(tags)}")
            self.meta_graph = meta_graph_pb2.MetaGraphDef.FromString(ctypes.string_at(meta.contents.data, meta.contents.length))
        except BaseException:
            self.close()
            raise
        finally:
            lib.TF_DeleteBuffer(meta)
            lib.TF_DeleteSessionOptions(options)
        self.signature_defs = {k: v for k, v in self.meta_graph.signature_def.items() if not k.startswith("__")}

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{output key: array} of a signature on {input key: array} (the SignatureDef's keys)."""
        if signature_name not in self.signature_defs:
            raise ValueError(f"No signature {signature_name!r}; signatures: {sorted(self.signature_defs)}.")
        signature = self.signature_defs[signature_name]
        if set(inputs) != set(signature.inputs):
            raise ValueError(f"Signature {signature_name!r} takes inputs {sorted(signature.inputs)}, got {sorted(inputs)}.")
        in_keys, out_keys = sorted(inputs), sorted(signature.outputs)
        feeds = (_Output * len(in_keys))(*[self._output(signature.inputs[k].name) for k in in_keys])
        fetches = (_Output * len(out_keys))(*[self._output(signature.outputs[k].name) for k in out_keys])
        values = [_to_tensor(self.lib, np.asarray(inputs[k]), signature.inputs[k].dtype) for k in in_keys]
        in_values = (ctypes.c_void_p * len(values))(*values)
        out_values = (ctypes.c_void_p * len(out_keys))()
        try:
            with _Status() as status:
                self.lib.TF_SessionRun(self._session, None, feeds, in_values, len(in_keys), fetches, out_values,
                                       len(out_keys), None, 0, None, status.pointer)
                status.check(f"running signature {signature_name!r}")
            return {k: _from_tensor(self.lib, out_values[i]) for i, k in enumerate(out_keys)}
        finally:
            for tensor in values:
                _delete_input(self.lib, tensor)
            for tensor in out_values:  # owned by TensorFlow's buffers: their strings free themselves
                if tensor:
                    self.lib.TF_DeleteTensor(tensor)

    def _output(self, name: str) -> _Output:
        op, index = tensor_name(name)
        operation = self.lib.TF_GraphOperationByName(self._graph, op.encode())
        if not operation:
            raise ValueError(f"The graph has no operation {op!r} (tensor {name!r} of a SignatureDef).")
        return _Output(operation, index)

    def close(self) -> None:
        """Close and delete the session and its graph (idempotent)."""
        if self._session:
            with _Status() as status:
                self.lib.TF_CloseSession(self._session, status.pointer)
                self.lib.TF_DeleteSession(self._session, status.pointer)
            self._session = None
        if self._graph:
            self.lib.TF_DeleteGraph(self._graph)
            self._graph = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _to_tensor(lib, array: np.ndarray, dtype_enum: int) -> int:
    """A new TF_Tensor (its pointer) holding `array` as the DataType `dtype_enum`."""
    dims = (ctypes.c_int64 * array.ndim)(*array.shape)
    if dtype_enum == TF_STRING:
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        tensor = lib.TF_AllocateTensor(TF_STRING, dims, array.ndim, TSTRING_BYTES * len(items))
        base = lib.TF_TensorData(tensor)
        for i, item in enumerate(items):
            lib.TF_StringInit(base + i * TSTRING_BYTES)
            lib.TF_StringCopy(base + i * TSTRING_BYTES, item, len(item))
        return tensor
    data = np.ascontiguousarray(array, dtype=tf.dtypes.as_dtype(dtype_enum).as_numpy_dtype)
    tensor = lib.TF_AllocateTensor(dtype_enum, dims, array.ndim, data.nbytes)
    ctypes.memmove(lib.TF_TensorData(tensor), data.ctypes.data, data.nbytes)
    return tensor


def _from_tensor(lib, tensor: int) -> np.ndarray:
    """A copy of a TF_Tensor's values as an array (bytes objects for strings)."""
    dtype_enum = lib.TF_TensorType(tensor)
    shape = tuple(lib.TF_Dim(tensor, d) for d in range(lib.TF_NumDims(tensor)))
    base = lib.TF_TensorData(tensor)
    if dtype_enum == TF_STRING:
        count = int(np.prod(shape, dtype=np.int64))
        items = [ctypes.string_at(lib.TF_StringGetDataPointer(base + i * TSTRING_BYTES),
                                  lib.TF_StringGetSize(base + i * TSTRING_BYTES)) for i in range(count)]
        return np.array(items, dtype=object).reshape(shape)
    dtype = np.dtype(tf.dtypes.as_dtype(dtype_enum).as_numpy_dtype)
    size = lib.TF_TensorByteSize(tensor)
    data = ctypes.string_at(base, size) if size else b""
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _delete_input(lib, tensor: int) -> None:
    """TF_DeleteTensor of a tensor `_to_tensor` made, after releasing the heap storage of each of
    its strings (TF_AllocateTensor's buffer is raw memory: deleting it runs no string destructor)."""
    if lib.TF_TensorType(tensor) == TF_STRING:
        count = lib.TF_TensorByteSize(tensor) // TSTRING_BYTES
        base = lib.TF_TensorData(tensor)
        for i in range(count):
            lib.TF_StringDealloc(base + i * TSTRING_BYTES)
    lib.TF_DeleteTensor(tensor)
