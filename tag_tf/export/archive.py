"""Grouped networks -> one multi-head SavedModel in TF Serving's layout.

`export_multihead(networks, assignment, export_base, model_name)` writes
`<export_base>/<model_name>/<version>/`, a SavedModel (through `keras.export.ExportArchive`) with
the signatures

    serving_default     the model's own inputs, by name (e.g. image float32 [batch, H, W, 3] in
                        [0, 1], or clicks, user, ...)  -> {task: answer}, every task
    serving_bytes       image_bytes string [batch] (JPEG/PNG/GIF/BMP) -> the same, decoded and
                        resized to H x W inside the graph (only for one image input)
    serving_tf_example  examples string [batch], serialized tf.Example protos with one feature per
                        input (only for numeric, non-image inputs: `tag_tf.export.signatures`)
    group_<i>           the inputs of serving_default -> {task: answer} for every head of network i

where each task's answer comes from the network the assignment names, every network runs once per
request, and an answer is (`ANSWERS`, the `output` of each task in tasks.json):

| kind           | answer                                   | shape          |
|----------------|------------------------------------------|----------------|
| `binary`       | probability of the positive class        | [B]            |
| `multiclass`   | class probabilities (softmax)            | [B, K]         |
| `regression`   | the value                                | [B]            |
| `segmentation` | class probabilities of every pixel       | [B, H, W, K]   |
| `depth`        | the depth of every pixel                 | [B, H, W]      |
| `normals`      | unit normal of every pixel (normalised;  | [B, H, W, 3]   |
|                | 0 where the head outputs 0)              |                |
| `edges`        | edge probability of every pixel          | [B, H, W]      |

Segmentation answers probabilities, as multiclass tasks do, rather than the class map: the class
map is `argmax(answer, axis=-1)` on the client, while probabilities keep the confidence (and
what a client needs to combine or threshold classes); it costs K floats a pixel.

Beside the SavedModel: `assets/tasks.json` (tasks,
groups, assignment, thresholds, input specs, affinity summary, versions) and
`assets.extra/tf_serving_warmup_requests` (PredictionLog records TF Serving replays on load).

The version directory is written under a hidden temporary name in the model folder, checked as
TF Serving will load it (`tag_tf.export.check.check_version_dir`: through TensorFlow's C API, every
signature against the Keras networks, the warmup requests replayed), then renamed
(`tag_tf.utils.io.atomic_directory`): a polling server (TF Serving only loads numeric directories) never
sees half a model or one that fails the check. Exports to one model take turns (a lock file,
`.export.lock`), and each removes the temporaries an export killed before it left behind.

>>> import tempfile, numpy as np, tensorflow as tf
>>> from tag_tf.models import build_multitask_model, mlp_trunk
>>> from tag_tf.tasks import Task
>>> net = build_multitask_model(mlp_trunk(3, hidden=(4,)), [Task("a"), Task("b", "regression")])
>>> base = tempfile.mkdtemp()
>>> path = export_multihead([net], {"a": 0, "b": 0}, base, "demo", warmup=False)
>>> os.path.relpath(path, base), next_version(os.path.join(base, "demo"))
('demo/1', 2)
>>> out = tf.saved_model.load(path).signatures["serving_default"](features=tf.ones((2, 3)))
>>> {task: tuple(value.shape) for task, value in sorted(out.items())}
{'a': (2,), 'b': (2,)}
"""

from __future__ import annotations

import contextlib
import logging as stdlib_logging
import os
import re
from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

import tag_tf
from tag_tf.affinity import TaskAffinity
from tag_tf.export.check import WARMUP_FILE, check_version_dir, sample_inputs
from tag_tf.utils.io import atomic_directory, exclusive_folder, write_json_atomic
from tag_tf.export.signatures import (accepts_examples, example_bytes, is_image, model_inputs, named_input_specs,
                               parse_examples)
from tag_tf.tasks import Task

BYTES_SIGNATURE = "serving_bytes"
BYTES_INPUT = "image_bytes"
EXAMPLE_SIGNATURE = "serving_tf_example"
EXAMPLE_INPUT = "examples"
TASKS_FILE = os.path.join("assets", "tasks.json")
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")
BINARY_THRESHOLD = 0.5
EXPORT_LOCK = ".export.lock"  # held while a version is written; TF Serving ignores non-numeric names
# What each kind's answer is (the `output` of every task in assets/tasks.json).
ANSWERS = {"binary": "probability", "multiclass": "class_probabilities", "regression": "value",
           "segmentation": "pixel_class_probabilities", "depth": "pixel_depth", "normals": "pixel_unit_normals",
           "edges": "pixel_edge_probability"}


def export_multihead(
    networks: Sequence[keras.Model],
    assignment: Mapping[str, int],
    export_base: str,
    model_name: str,
    version: int | None = None,
    warmup: bool = True,
    *,
    affinity: TaskAffinity | None = None,
) -> str:
    """Write the networks as one multi-head SavedModel; returns `<export_base>/<model_name>/<version>`.

    Args:
      networks: `MultiTaskModel`s (anything with `.tasks` and a dict output keyed by task name),
        all on the same input.
      assignment: task name -> index into `networks` of the network serving it, in the order the
        tasks should be listed; every head of every network must be assigned to some network.
      export_base: the folder of TF Serving's model base paths.
      model_name: the model's name (its folder under `export_base`).
      version: a positive integer not yet present; None takes the next (1 for a new model).
      warmup: write `assets.extra/tf_serving_warmup_requests`.
      affinity: the run's `TaskAffinity`, summarised in `tasks.json` (matrix[source, target];
        for each task, the mean affinity onto it from the other tasks of its network).

    Raises ValueError, before writing anything, for an unknown or unserved task, a network index
    out of range, networks on different inputs, a bad model name or a taken version;
    `tag_tf.export.check.ExportCheckError` (a ValueError), leaving no version behind, when the
    written SavedModel fails the check through TF Serving's load path.
    """
    tasks = check_networks(networks, assignment)
    if not isinstance(model_name, str) or not MODEL_NAME_PATTERN.fullmatch(model_name):
        raise ValueError(f"model_name {model_name!r} is not valid: use letters, digits, '_', '.' or '-'.")
    model_dir = os.path.join(export_base, model_name)
    check_version(model_dir, version)  # before anything is written
    with exclusive_folder(model_dir, EXPORT_LOCK):
        version = check_version(model_dir, version)  # again, now that no other export runs
        with atomic_directory(os.path.join(model_dir, str(version))) as tmp:
            with quiet_tensorflow_logs():  # an INFO line per function and asset otherwise
                build_archive(networks, tasks, assignment).write_out(tmp, verbose=False)
            write_json_atomic(os.path.join(tmp, TASKS_FILE),
                              tasks_summary(networks, tasks, assignment, model_name, version, affinity))
            if warmup:
                write_warmup_requests(os.path.join(tmp, WARMUP_FILE), model_name, named_input_specs(networks[0]))
            check_version_dir(tmp, keras_reference(networks, tasks, assignment),
                              samples=example_samples(named_input_specs(networks[0])))
    return os.path.join(model_dir, str(version))


@contextlib.contextmanager
def quiet_tensorflow_logs():
    """Drops records below WARNING from the loggers TensorFlow's SavedModel writer uses
    ("tensorflow", "absl") inside the block. (A filter, as the writer resets the absl level.)"""
    loggers = [tf.get_logger(), stdlib_logging.getLogger("absl")]
    def below_warning(record):  # False drops the record
        return record.levelno >= stdlib_logging.WARNING

    for logger in loggers:
        logger.addFilter(below_warning)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(below_warning)


def check_networks(networks: Sequence[keras.Model], assignment: Mapping[str, int]) -> list[Task]:
    """The assigned tasks in the assignment's order, after checking networks and assignment agree.

    >>> from tag_tf.models import build_multitask_model, mlp_trunk
    >>> net = build_multitask_model(mlp_trunk(3, hidden=(4,)), ["a", "b"])
    >>> check_networks([net], {"c": 0})
    Traceback (most recent call last):
    ...
    ValueError: Task 'c' is assigned to network 0, which has no such head; its tasks: ['a', 'b'].
    """
    if not networks or any(not hasattr(n, "tasks") for n in networks):
        raise ValueError(f"networks must be a non-empty list of MultiTaskModels, got {networks!r}.")
    tasks = []
    for name, index in assignment.items():
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(networks):
            raise ValueError(f"Task {name!r} is assigned to network {index!r}; valid networks: 0..{len(networks) - 1}.")
        heads = {t.name: t for t in networks[index].tasks}
        if name not in heads:
            raise ValueError(f"Task {name!r} is assigned to network {index}, which has no such head; "
                             f"its tasks: {list(heads)}.")
        tasks.append(heads[name])
    unassigned = sorted({t.name for n in networks for t in n.tasks} - set(assignment))
    if unassigned:
        raise ValueError(f"Task(s) {unassigned} have heads but no serving network in the assignment "
                         f"(assigned: {list(assignment)}).")
    specs = [named_input_specs(n) for n in networks]
    if any(s != specs[0] for s in specs):
        described = [{name: spec.shape.as_list() for name, spec in s.items()} for s in specs]
        raise ValueError(f"All networks must share their inputs; got {described}.")
    return tasks


def check_version(model_dir: str, version: int | None) -> int:
    """`version`, or the next free one when None; ValueError for a non-positive or taken version.

    >>> check_version("/nonexistent", None)
    1
    """
    if version is None:
        return next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"version must be a positive integer or None (the next one), got {version!r}.")
    existing = existing_versions(model_dir)
    if version in existing:
        raise ValueError(f"version {version} exists in {model_dir} (versions {existing}); "
                         f"use version=None for the next one ({next_version(model_dir)}).")
    return int(version)


def existing_versions(model_dir: str) -> list[int]:
    """The numeric version directories of a model folder, ascending (what TF Serving would load).

    >>> existing_versions("/nonexistent")
    []
    """
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir)
                  if d.isdigit() and os.path.isdir(os.path.join(model_dir, d)))


def next_version(model_dir: str) -> int:
    """One more than the largest existing version, or 1."""
    return max(existing_versions(model_dir), default=0) + 1


def serving_answer(task: Task, output: tf.Tensor) -> tf.Tensor:
    """A head's output as served (`ANSWERS`; the module docstring's table).

    >>> serving_answer(Task("a"), tf.constant([[0.0]])).numpy().tolist()
    [0.5]
    >>> serving_answer(Task("n", kind="normals"), tf.constant([[[[0.0, 3.0, 4.0]]]])).numpy().tolist()
    [[[[0.0, 0.6000000238418579, 0.800000011920929]]]]
    """
    output = tf.cast(output, tf.float32)
    if task.kind in ("binary", "edges"):
        return tf.sigmoid(output[..., 0])
    if task.kind in ("multiclass", "segmentation"):
        return tf.nn.softmax(output, axis=-1)
    if task.kind == "normals":
        return tf.math.l2_normalize(output, axis=-1)
    return output[..., 0]


def build_archive(networks: Sequence[keras.Model], tasks: Sequence[Task],
                  assignment: Mapping[str, int]) -> keras.export.ExportArchive:
    """An ExportArchive tracking every network, with the signatures of the module docstring."""
    specs = named_input_specs(networks[0])
    archive = keras.export.ExportArchive()
    for network in networks:
        archive.track(network)
    answers = served_answers_fn(networks, tasks, assignment)
    archive.add_endpoint("serving_default", answers, [specs])  # input keys: the inputs' names
    names = signature_names(specs, len(networks))
    if BYTES_SIGNATURE in names:
        (name, spec), = specs.items()
        height, width = spec.shape[1:3]
        archive.add_endpoint(BYTES_SIGNATURE, lambda data: answers({name: decode_images(data, height, width)}),
                             [tf.TensorSpec([None], tf.string, name=BYTES_INPUT)])
    if EXAMPLE_SIGNATURE in names:
        archive.add_endpoint(EXAMPLE_SIGNATURE, lambda examples: answers(parse_examples(examples, specs)),
                             [tf.TensorSpec([None], tf.string, name=EXAMPLE_INPUT)])
    for i, network in enumerate(networks):
        archive.add_endpoint(f"group_{i}", own_answers_fn(network), [specs])
    return archive


def served_answers_fn(networks: Sequence[keras.Model], tasks: Sequence[Task], assignment: Mapping[str, int]):
    """named inputs -> every task's answer from the network serving it (each network runs once)."""
    serving = [(i, [t for t in tasks if assignment[t.name] == i]) for i in range(len(networks))]
    serving = [(i, served) for i, served in serving if served]

    def answers(named):
        result = {}
        for i, served in serving:  # each network once, its assigned heads only
            outputs = networks[i](model_inputs(networks[i], named), training=False)
            result.update({t.name: serving_answer(t, outputs[t.name]) for t in served})
        return result

    return answers


def keras_reference(networks: Sequence[keras.Model], tasks: Sequence[Task], assignment: Mapping[str, int]):
    """(signature name, {input: array}) -> {task: array}: what each signature of the export must
    answer, computed from the Keras networks (the reference of `check_version_dir`)."""
    specs = named_input_specs(networks[0])
    by_signature = {"serving_default": served_answers_fn(networks, tasks, assignment),
                    **{f"group_{i}": own_answers_fn(n) for i, n in enumerate(networks)}}
    names = signature_names(specs, len(networks))

    def reference(signature, inputs):
        if signature not in names:
            raise ValueError(f"The export has a signature {signature!r} no network answers; expected {names}.")
        if signature == BYTES_SIGNATURE:
            (name, spec), = specs.items()
            named = {name: decode_images(tf.constant(inputs[BYTES_INPUT]), *spec.shape[1:3])}
        elif signature == EXAMPLE_SIGNATURE:
            named = parse_examples(tf.constant(inputs[EXAMPLE_INPUT]), specs)
        else:
            named = {name: tf.constant(inputs[name]) for name in specs}
        answer = by_signature.get(signature, by_signature["serving_default"])
        return {k: v.numpy() for k, v in answer(named).items()}

    return reference


def example_samples(specs: Mapping[str, tf.TensorSpec]):
    """`check_version_dir`'s sample inputs: serialized tf.Examples of random inputs for
    `serving_tf_example`, its default samples for every other signature."""
    def samples(name, signature, batch, rng):
        if name != EXAMPLE_SIGNATURE:
            return sample_inputs(signature, batch, rng)
        rows = [{n: rng.random(s.shape[1:]).astype(np.float32) if s.dtype.is_floating
                 else rng.integers(0, 10, s.shape[1:]) for n, s in specs.items()} for _ in range(batch)]
        return {EXAMPLE_INPUT: np.array([example_bytes(row) for row in rows], dtype=object)}

    return samples


def own_answers_fn(network: keras.Model):
    """named inputs -> every head of `network` on them, as served."""
    def own_answers(named):
        outputs = network(model_inputs(network, named), training=False)
        return {t.name: serving_answer(t, outputs[t.name]) for t in network.tasks}

    return own_answers


def decode_images(image_bytes: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Encoded images (string [B]) -> float32 [B, height, width, 3] in [0, 1], bilinear resize.

    >>> png = tf.io.encode_png(tf.fill([2, 3, 3], tf.constant(255, tf.uint8)))
    >>> float(decode_images(tf.stack([png]), 4, 4).numpy().min())
    1.0
    """
    def one(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.convert_image_dtype(image, tf.float32)
        return tf.image.resize(image, [height, width])

    return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))


def tasks_summary(networks: Sequence[keras.Model], tasks: Sequence[Task], assignment: Mapping[str, int],
                  model_name: str, version: int, affinity: TaskAffinity | None) -> dict:
    """The content of `assets/tasks.json`."""
    specs = named_input_specs(networks[0])
    return {
        "model_name": model_name,
        "version": version,
        "tasks": [{**t.to_json(), "network": int(assignment[t.name]), "output": ANSWERS[t.kind],
                   "threshold": BINARY_THRESHOLD if t.kind == "binary" else None} for t in tasks],
        "groups": [[t.name for t in n.tasks] for n in networks],
        "assignment": {t.name: int(assignment[t.name]) for t in tasks},
        "inputs": [{"name": name, "dtype": spec.dtype.name, "shape": spec.shape.as_list(),
                    "range": [0.0, 1.0] if is_image(spec) else None} for name, spec in specs.items()],
        "signatures": signature_names(specs, len(networks)),
        "affinity": affinity_summary(affinity, networks, assignment) if affinity is not None else None,
        "versions": {"tag_tf": tag_tf.__version__, "tensorflow": tf.__version__, "keras": keras.__version__},
    }


def affinity_summary(affinity: TaskAffinity, networks: Sequence[keras.Model],
                     assignment: Mapping[str, int]) -> dict:
    """The matrix (A[source, target]) and, per task, the mean affinity onto it from the other tasks
    of its serving network (None when it is alone)."""
    index = {name: i for i, name in enumerate(affinity.tasks)}
    onto = {}
    for task, network in assignment.items():
        sources = [t.name for t in networks[network].tasks if t.name != task and t.name in index]
        values = [affinity.matrix[index[s], index[task]] for s in sources] if task in index else []
        finite = [float(v) for v in values if np.isfinite(v)]
        onto[task] = float(np.mean(finite)) if finite else None
    return {"tasks": list(affinity.tasks), "orientation": "matrix[source][target]",
            "matrix": [[float(v) if np.isfinite(v) else None for v in row] for row in affinity.matrix],
            "onto_task_from_its_network": onto}


def signature_names(specs: Mapping[str, tf.TensorSpec], num_networks: int) -> list[str]:
    """The signatures an export with these inputs has.

    >>> signature_names({"image": tf.TensorSpec([None, 8, 8, 3])}, 2)
    ['serving_default', 'serving_bytes', 'group_0', 'group_1']
    """
    image = len(specs) == 1 and is_image(next(iter(specs.values())))
    return (["serving_default"] + ([BYTES_SIGNATURE] if image else [])
            + ([EXAMPLE_SIGNATURE] if accepts_examples(specs) else []) + [f"group_{i}" for i in range(num_networks)])


def write_warmup_requests(path: str, model_name: str, specs: Mapping[str, tf.TensorSpec]) -> None:
    """TFRecord of PredictionLog records: one batch-1 request per input signature (zeros; a black
    PNG for `serving_bytes`; a tf.Example of zeros for `serving_tf_example`), which TF Serving
    replays before serving a version."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    zeros = {name: np.zeros([1, *s.shape[1:]], s.dtype.as_numpy_dtype) for name, s in specs.items()}
    requests = [("serving_default", {name: tf.make_tensor_proto(z) for name, z in zeros.items()})]
    names = signature_names(specs, 0)
    if BYTES_SIGNATURE in names:
        png = tf.io.encode_png(tf.zeros(next(iter(specs.values())).shape[1:], tf.uint8)).numpy()
        requests.append((BYTES_SIGNATURE, {BYTES_INPUT: tf.make_tensor_proto([png])}))
    if EXAMPLE_SIGNATURE in names:
        requests.append((EXAMPLE_SIGNATURE, {EXAMPLE_INPUT: tf.make_tensor_proto([example_bytes(zeros)])}))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature), inputs=inputs)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
