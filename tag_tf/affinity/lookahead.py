"""Lookahead steps: the step Δ an optimizer would take on the shared variables from one task's
gradient, computed from its own hyperparameters and slot variables, mutating nothing.

Keras' `optimizer.stateless_apply` does not exist on the TensorFlow backend, so every supported
optimizer has its rule here, stated as code as the Keras optimizers apply it (g: the gradient
after Keras' `clipnorm` / `clipvalue`; lr: the current learning rate; the step is θ − Δ):

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

>>> sgd_delta(2.0, lr=0.1)          # plain SGD: the lookahead step is lr times the gradient
0.2
>>> round(sgd_delta(2.0, lr=0.1, momentum=0.9, m=-0.5), 6)    # momentum carries the last step
0.65
"""

from __future__ import annotations

import keras
import tensorflow as tf

SUPPORTED_OPTIMIZERS = ("SGD", "Adam", "AdamW")



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
