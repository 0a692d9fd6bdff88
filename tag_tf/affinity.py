"""Inter-task affinity (TAG, Fifty et al. 2021): the math, as small pure functions, and its results.

`A[source, target]` is how much one optimizer step on the source task's loss alone lowers the
target task's loss. At a training step with batch X, shared parameters θs and task heads θj:

    Z[i, j] = 1 − L_j(X; θs − Δi, θj) / L_j(X; θs, θj)              (mode="exact")
    Z[i, j] ≈ (∇θs L_j · Δi) / L_j(X; θs, θj)                        (mode="first_order")

where Δi is the amount the optimizer would subtract from θs on task i's loss alone (its momentum
and moments included, nothing mutated). The first-order form is the Taylor expansion of the exact
one (L_j(θ − Δ) ≈ L_j − ∇L_j · Δ) and needs no extra forward pass. With `normalize_by_lr`, Z is
divided by the current learning rate, as in the official TAG code. A is the mean of Z over the
affinity steps of the run; per-epoch means are kept too.

Lookahead rules, stated as code, as the Keras optimizers apply them (g: the gradient after
Keras' `clipnorm` / `clipvalue`; lr: the current learning rate; the result is Δ, the step is θ − Δ):

    SGD:            Δ = lr·g                                        (momentum = 0)
    SGD momentum:   m' = momentum·m − lr·g;  Δ = −m'
    SGD nesterov:   m' = momentum·m − lr·g;  Δ = lr·g − momentum·m'
    Adam:           t = iterations + 1;  m' = m + (1 − β1)(g − m);  v' = v + (1 − β2)(g² − v)
                    (amsgrad: v' = max(v̂, v'));  Δ = lr·√(1 − β2ᵗ)/(1 − β1ᵗ) · m' / (√v' + ε)
    AdamW:          Adam's Δ, plus decoupled weight decay (below)
    weight_decay:   Δ += lr·weight_decay·θ  (any optimizer, for variables not excluded from it)

`global_clipnorm` (its norm spans variables outside the lookahead) and
`gradient_accumulation_steps` (no step is taken on most batches) are refused with a clear error;
EMA (`use_ema`) changes no step and is allowed.

>>> import numpy as np
>>> # plain SGD: the lookahead step is lr times the gradient
>>> sgd_delta(2.0, lr=0.1)
0.2
>>> z = exact_affinity(before=np.array([1.0, 2.0]), after=np.array([[0.9, 2.0], [1.0, 1.5]]))
>>> np.round(np.float64(z), 3).tolist()
[[0.1, 0.0], [0.0, 0.25]]
"""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import tensorflow as tf

MODES = ("exact", "first_order")
SUPPORTED_OPTIMIZERS = ("SGD", "Adam", "AdamW")


@dataclasses.dataclass(frozen=True)
class AffinityConfig:
    """How affinity is collected during `fit()`.

    Attributes:
      mode: "exact" (lookahead forward passes, as in the paper) or "first_order" (Taylor estimate).
      every_n_steps: collect on every n-th optimizer step (the paper suggests 10 as a speed-up).
      normalize_by_lr: divide Z by the learning rate, as the official TAG code does.
      max_epochs: how many epochs' means are kept (in model variables, so they survive a resume).

    >>> AffinityConfig(every_n_steps=10).to_json()
    {'mode': 'exact', 'every_n_steps': 10, 'normalize_by_lr': True, 'max_epochs': 200}
    """

    mode: str = "exact"
    every_n_steps: int = 1
    normalize_by_lr: bool = True
    max_epochs: int = 200

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Unknown affinity mode {self.mode!r}; valid modes: {MODES}.")
        if not isinstance(self.every_n_steps, int) or self.every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {self.every_n_steps!r}.")
        if not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {self.max_epochs!r}.")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "AffinityConfig":
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class TaskAffinity:
    """The measured affinities of a run.

    Attributes:
      tasks: task names, in the user's order.
      matrix: float [n, n], `matrix[source, target]`: the mean affinity of a step on `source` onto
        `target` over the run. Selection reads the affinity onto a task as a column.
      epochs: one [n, n] matrix per epoch (same orientation), the mean over that epoch.
      steps: the number of affinity steps that went into `matrix`.
      skipped: the number of (step, source, target) samples left out because a loss was zero or
        not finite.
    """

    tasks: tuple[str, ...]
    matrix: np.ndarray
    epochs: tuple[np.ndarray, ...] = ()
    steps: int = 0
    skipped: int = 0

    def to_json(self, path: str | None = None) -> dict:
        """The JSON form (task names, matrices as nested lists [source][target]); written to `path` if given."""
        data = {
            "tasks": list(self.tasks),
            "orientation": "matrix[source][target]",
            "matrix": _nested(self.matrix),
            "epochs": [_nested(m) for m in self.epochs],
            "steps": int(self.steps),
            "skipped": int(self.skipped),
        }
        if path is not None:
            from tag_tf.io import write_json_atomic

            write_json_atomic(path, data)
        return data

    @classmethod
    def from_json(cls, data_or_path) -> "TaskAffinity":
        data = data_or_path
        if isinstance(data_or_path, str):
            with open(data_or_path) as f:
                data = json.load(f)
        return cls(
            tasks=tuple(data["tasks"]),
            matrix=np.array(data["matrix"], np.float64),
            epochs=tuple(np.array(m, np.float64) for m in data.get("epochs", [])),
            steps=int(data.get("steps", 0)),
            skipped=int(data.get("skipped", 0)),
        )


def _nested(matrix: np.ndarray) -> list:
    """A matrix as nested lists, with NaN (no sample) as None."""
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(matrix)]


# ---------------------------------------------------------------------------------------------
# Lookahead steps: pure rules, and their adapter to a live Keras optimizer.


def sgd_delta(g, lr, momentum=0.0, m=None, nesterov=False):
    """Δ of Keras SGD; see the module docstring for the rule."""
    if not momentum:
        return lr * g
    m_new = momentum * m - lr * g
    return lr * g - momentum * m_new if nesterov else -m_new


def adam_delta(g, lr, m, v, step, beta_1, beta_2, epsilon, v_hat=None):
    """Δ of Keras Adam at optimizer step `step` (= iterations + 1); see the module docstring."""
    m_new = m + (g - m) * (1.0 - beta_1)
    v_new = v + (tf.square(g) - v) * (1.0 - beta_2)
    if v_hat is not None:
        v_new = tf.maximum(v_hat, v_new)
    alpha = lr * tf.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    return alpha * m_new / (tf.sqrt(v_new) + epsilon)


def unwrap_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer that takes the steps (inside Keras' LossScaleOptimizer, if any)."""
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer


def check_optimizer(optimizer: keras.optimizers.Optimizer) -> None:
    """Raise ValueError unless the lookahead can reproduce this optimizer's step exactly."""
    inner = unwrap_optimizer(optimizer)
    name = type(inner).__name__
    if type(inner) not in (keras.optimizers.SGD, keras.optimizers.Adam, keras.optimizers.AdamW):
        raise ValueError(
            f"The affinity lookahead has no rule for optimizer {name}; supported: {SUPPORTED_OPTIMIZERS} "
            f"(optionally inside LossScaleOptimizer)."
        )
    if inner.global_clipnorm:
        raise ValueError(
            f"global_clipnorm={inner.global_clipnorm} is not supported by the affinity lookahead (its norm "
            f"spans variables outside the shared trunk); use clipnorm or clipvalue instead."
        )
    if inner.gradient_accumulation_steps:
        raise ValueError(
            f"gradient_accumulation_steps={inner.gradient_accumulation_steps} is not supported by the affinity "
            f"lookahead: an accumulating optimizer takes no step on most batches."
        )


def clip_gradients(optimizer: keras.optimizers.Optimizer, grads: list) -> list:
    """Keras' per-variable `clipnorm` / `clipvalue`, as `optimizer.apply` would apply them."""
    inner = unwrap_optimizer(optimizer)
    if inner.clipnorm and inner.clipnorm > 0:
        return [tf.clip_by_norm(g, inner.clipnorm) for g in grads]
    if inner.clipvalue and inner.clipvalue > 0:
        return [tf.clip_by_value(g, -inner.clipvalue, inner.clipvalue) for g in grads]
    return grads


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> tf.Tensor:
    """The learning rate of the optimizer's next step (schedules evaluated), float32."""
    return tf.cast(unwrap_optimizer(optimizer).learning_rate, tf.float32)


def lookahead_deltas(optimizer: keras.optimizers.Optimizer, grads: list, variables: list) -> list:
    """Δ per variable: what `optimizer.apply(grads, variables)` would subtract, mutating nothing.

    `grads` are unscaled (divide out any loss scale first). Reads the optimizer's hyperparameters
    and slot variables (momentum, Adam moments) at their current values.
    """
    inner = unwrap_optimizer(optimizer)
    check_optimizer(inner)
    lr = current_learning_rate(inner)
    grads = clip_gradients(inner, grads)
    deltas = []
    for g, var in zip(grads, variables):
        g = tf.cast(g, tf.float32)
        index = inner._get_variable_index(var)
        if isinstance(inner, keras.optimizers.Adam):  # AdamW is an Adam
            step = tf.cast(inner.iterations + 1, tf.float32)
            v_hat = inner._velocity_hats[index] if inner.amsgrad else None
            delta = adam_delta(g, lr, inner._momentums[index], inner._velocities[index], step,
                               inner.beta_1, inner.beta_2, inner.epsilon, v_hat)
        else:
            m = inner.momentums[index] if inner.momentum else None
            delta = sgd_delta(g, lr, inner.momentum, m, inner.nesterov)
        if inner.weight_decay and inner._use_weight_decay(var):
            delta = delta + lr * inner.weight_decay * var
        deltas.append(tf.convert_to_tensor(delta))
    return deltas


# ---------------------------------------------------------------------------------------------
# Affinity from losses, and its accumulation.


def exact_affinity(before, after):
    """Z[i, j] = 1 − after[i, j] / before[j]: `after[i, j]` is L_j after the lookahead on task i."""
    before = tf.cast(before, tf.float32)
    return 1.0 - tf.cast(after, tf.float32) / before[None, :]


def gradient_dot(a: list, b: list) -> tf.Tensor:
    """Σ over variables of the element-wise products of two lists of gradients (float32).

    >>> float(gradient_dot([np.ones(3), np.ones((2, 2))], [np.full(3, 2.0), np.ones((2, 2))]))
    10.0
    """
    return tf.add_n([tf.reduce_sum(tf.cast(x, tf.float32) * tf.cast(y, tf.float32)) for x, y in zip(a, b)])


def first_order_affinity(before, gradient_dots):
    """Z[i, j] ≈ (∇L_j · Δi) / L_j, with `gradient_dots[i, j]` = ∇L_j · Δi."""
    return tf.cast(gradient_dots, tf.float32) / tf.cast(before, tf.float32)[None, :]


def valid_samples(before, after, z, labelled):
    """Which Z[i, j] count: both tasks labelled in the batch, losses finite and non-zero.

    Returns (valid [n, n] bool, skipped [n, n] bool): `skipped` marks labelled pairs rejected for a
    zero or non-finite loss (counted, never averaged in).
    """
    labelled = tf.cast(labelled, tf.bool)
    both = tf.logical_and(labelled[:, None], labelled[None, :])
    before = tf.cast(before, tf.float32)
    finite = tf.logical_and(tf.math.is_finite(before), tf.not_equal(before, 0.0))[None, :]
    finite = tf.logical_and(finite, tf.math.is_finite(tf.cast(after, tf.float32)))
    finite = tf.logical_and(finite, tf.math.is_finite(z))
    return tf.logical_and(both, finite), tf.logical_and(both, tf.logical_not(finite))


def mean_affinity(total, count):
    """Element-wise total / count, NaN where there was no sample.

    >>> mean_affinity(np.array([[2.0, 0.0]]), np.array([[4.0, 0.0]])).tolist()
    [[0.5, nan]]
    """
    total, count = np.asarray(total, np.float64), np.asarray(count, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)
