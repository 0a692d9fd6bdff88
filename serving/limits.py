"""What one request may ask of the dev server: body size, batch size, tensor elements, JSON depth.

A request beyond a limit is answered with TF Serving's error body and a 4xx before any work is
done for it (413 for the body size; 400, gRPC INVALID_ARGUMENT, for the rest). gRPC tensors are
checked from their declared shape, before their values are decoded.

>>> limits = Limits(max_batch_size=8, max_tensor_elements=100)
>>> check_shape("image", [4, 5, 5], limits)
>>> try:
...     check_shape("image", [9, 2], limits)
... except ServingError as error:
...     print(error.code.name, error)
INVALID_ARGUMENT Input 'image': batch size 9 exceeds the limit of 8.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from serving.registry import ServingError


@dataclasses.dataclass(frozen=True)
class Limits:
    """The largest request accepted.

    Attributes:
      max_request_bytes: a REST body or gRPC message, in bytes.
      max_batch_size: the first dimension of any input tensor.
      max_tensor_elements: the elements of any one input tensor.
      max_json_depth: how deeply a REST body's arrays and objects nest.
    """

    max_request_bytes: int = 64 << 20
    max_batch_size: int = 1024
    max_tensor_elements: int = 16 << 20
    max_json_depth: int = 32

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name} must be a positive integer, got {value!r}.")


def check_shape(name: str, shape: Sequence[int], limits: Limits) -> None:
    """INVALID_ARGUMENT for a negative dimension, a batch (first dimension) over the limit or more
    elements than the limit."""
    shape = [int(d) for d in shape]
    if any(d < 0 for d in shape):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Input {name!r}: invalid shape {shape}.")
    if shape and shape[0] > limits.max_batch_size:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Input {name!r}: batch size {shape[0]} exceeds the limit of {limits.max_batch_size}.")
    elements = math.prod(shape)
    if elements > limits.max_tensor_elements:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Input {name!r}: {elements} elements exceed the limit of {limits.max_tensor_elements}.")


def tensor_from_proto(name: str, proto, limits: Limits, dtype: tf.DType | None = None) -> np.ndarray:
    """A gRPC request's TensorProto as an array, after checking its declared shape against the
    limits and its dtype against `dtype` (as TF Serving: no conversion); INVALID_ARGUMENT when it
    does not decode (unknown dtype, content of the wrong size).

    >>> tensor_from_proto("x", tf.make_tensor_proto([[1.0, 2.0]]), Limits()).tolist()
    [[1.0, 2.0]]
    >>> try:
    ...     tensor_from_proto("x", tf.make_tensor_proto([1]), Limits(), tf.float32)
    ... except ServingError as error:
    ...     print(error)
    Expects arg 'x' to be float but int32 is provided.
    """
    check_shape(name, [d.size for d in proto.tensor_shape.dim], limits)
    if dtype is not None and proto.dtype != dtype.as_datatype_enum:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Expects arg {name!r} to be "
                           f"{_type_name(dtype.as_datatype_enum)} but {_type_name(proto.dtype)} is provided.")
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Input {name!r} is not a valid tensor: {error}") from None


def _type_name(enum: int) -> str:
    """TF Serving's name of a DataType ("float", "double", "string"), or the number when unknown."""
    return types_pb2.DataType.Name(enum)[3:].lower() if enum in types_pb2.DataType.values() else str(enum)
