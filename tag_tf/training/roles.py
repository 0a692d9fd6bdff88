"""Which variables are shared and which belong to one task, read from the model itself.

A trainable variable that only task t's output depends on belongs to t (θt); one that two or more
tasks' outputs depend on is shared (θs); one that no task's output depends on is unused. The
dependence is structural (gradient connectivity): the model is traced once, symbolically, and
for every task the gradient of its output with respect to every variable is either a tensor
(connected) or None. Nothing runs, so it costs one trace whatever the model's size (under a
`tf.distribute` strategy, in a replica's context), and layer names play no part. The affinity lookahead moves exactly the shared variables.

>>> import keras
>>> features = keras.Input((3,), name="features")
>>> trunk = keras.layers.Dense(4, name="trunk")(features)
>>> tower_a = keras.layers.Dense(2, name="tower_a")(trunk)
>>> model = keras.Model(features, {"a": keras.layers.Dense(1, name="head_a")(tower_a),
...                                "b": keras.layers.Dense(1, name="head_b")(trunk)})
>>> roles = VariableRoles.of(model, ["a", "b"])
>>> [v.path for v in roles.shared]
['trunk/kernel', 'trunk/bias']
>>> [v.path for v in roles.own["a"]]
['tower_a/kernel', 'tower_a/bias', 'head_a/kernel', 'head_a/bias']
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class VariableRoles:
    """The trainable variables of a multi-task model by role, each list in the model's order.

    Attributes:
      shared: the variables two or more tasks' outputs depend on (or those given explicitly).
      own: {task: the variables only that task's output depends on}.
      unused: the variables no task's output depends on.
    """

    shared: list
    own: dict
    unused: list

    @classmethod
    def of(cls, model: keras.Model, tasks: Sequence[str], shared: Sequence | None = None) -> "VariableRoles":
        """The roles in `model` (functional, so that it can be traced on its own inputs) of its
        outputs `tasks`. `shared`: variables (or their paths) to take as shared instead of the
        connectivity's answer; every other connected variable belongs to its only task, and one
        that several tasks depend on but `shared` leaves out is an error."""
        depends = task_dependencies(model, tasks)
        variables = model.trainable_variables
        if shared is None:
            chosen = {id(v) for v in variables if len(depends[id(v)]) >= 2}
        else:
            chosen = _ids_of(shared, variables)
            ambiguous = [v.path for v in variables if len(depends[id(v)]) >= 2 and id(v) not in chosen]
            if ambiguous:
                raise ValueError(f"shared_variables leaves out {ambiguous}, which several tasks' outputs depend on; "
                                 f"a variable belongs to one task only if that task alone depends on it.")
        own = {t: [v for v in variables if id(v) not in chosen and depends[id(v)] == {t}] for t in tasks}
        return cls(shared=[v for v in variables if id(v) in chosen], own=own,
                   unused=[v for v in variables if id(v) not in chosen and not depends[id(v)]])

    def summary(self) -> dict[str, list[str]]:
        """{"shared": paths, <task>: paths, ..., "unused": paths}."""
        return {"shared": [v.path for v in self.shared], **{t: [v.path for v in vs] for t, vs in self.own.items()},
                "unused": [v.path for v in self.unused]}


def task_dependencies(model: keras.Model, tasks: Sequence[str]) -> dict[int, set[str]]:
    """{id(variable): the tasks whose output depends on it} for every trainable variable of
    `model`, from one symbolic trace of the model on its own input signature.

    Raises ValueError for a task whose output depends on no trainable variable.
    """
    variables = model.trainable_variables
    found: dict[int, set[str]] = {id(v): set() for v in variables}

    def trace(inputs):
        with tf.GradientTape(persistent=True) as tape:
            outputs = model(inputs, training=True)
            totals = {task: tf.reduce_sum(tf.cast(outputs[task], tf.float32)) for task in tasks}
        for task in tasks:
            grads = tape.gradient(totals[task], variables)
            for variable, grad in zip(variables, grads):
                if grad is not None:
                    found[id(variable)].add(task)
        return tf.constant(0)

    strategy = tf.distribute.get_strategy()  # under a strategy's scope, trace in a replica's context
    tf.function(lambda inputs: strategy.run(trace, args=(inputs,)), autograph=False).get_concrete_function(
        input_signature(model))
    alone = [t for t in tasks if not any(t in on for on in found.values())]
    if alone:
        raise ValueError(f"The output of task(s) {alone} depends on no trainable variable of the model: "
                         f"nothing trains it.")
    return found


def input_signature(model: keras.Model):
    """The structure of the model's inputs (a dict for named inputs) as TensorSpecs, batch None.

    >>> x = keras.Input((2,), name="u")
    >>> input_signature(keras.Model({"u": x}, x))
    {'u': TensorSpec(shape=(None, 2), dtype=tf.float32, name='u')}
    """
    return tf.nest.map_structure(
        lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=t.name), model.input)


def _ids_of(chosen: Sequence, variables: list) -> set[int]:
    """ids of the variables in `chosen` (variables, or their paths); ValueError for unknown paths."""
    by_path = {v.path: v for v in variables}
    ids, unknown = set(), []
    for item in chosen:
        if isinstance(item, str):
            if item in by_path:
                ids.add(id(by_path[item]))
            else:
                unknown.append(item)
        else:
            ids.add(id(item))
    if unknown:
        raise ValueError(f"shared_variables names unknown variable(s) {unknown}; the trainable variables are "
                         f"{list(by_path)}.")
    return ids
