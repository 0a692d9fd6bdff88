"""Uncertainty weighting (Kendall et al. 2018): Σ_i f_i·(exp(−s_i)·L_i + s_i), s_i = log σ_i²
learned with the network (initialised at 0), f_i = 1/2 for regression tasks and 1 otherwise.

>>> import numpy as np
>>> float(uncertainty_objective(np.array([2.0]), np.array([0.0]), np.array([False])))
2.0
>>> UncertaintyWeighting().to_json()
{'name': 'uncertainty'}
"""

from __future__ import annotations

import tensorflow as tf

from tag_tf.balancing.base import Balancer
from tag_tf.utils.gradients import num_replicas


def uncertainty_objective(losses, log_variances, regression, replicas: int = 1) -> tf.Tensor:
    """Σ_i f_i·(exp(−s_i)·L_i + s_i / replicas), f_i = 1/2 for regression tasks and 1 otherwise.
    Under a strategy each replica passes its share of the losses and adds its share of the s_i
    terms, so that the replicas' sum is the objective."""
    losses = tf.convert_to_tensor(losses, tf.float32)
    s = tf.convert_to_tensor(log_variances, tf.float32)
    factor = tf.where(tf.convert_to_tensor(regression), 0.5, 1.0)
    return tf.reduce_sum(factor * (tf.exp(-s) * losses + s / replicas))


class UncertaintyWeighting(Balancer):
    """Kendall et al. 2018 (see the module docstring). Logs `weight_<task>` = f_i·exp(−s_i).

    Attributes (after `build`):
      log_variances: the model variable holding s [k].
    """

    name = "uncertainty"

    def build(self, model) -> None:
        super().build(model)
        self.tasks = [t.name for t in model.tasks]
        self.regression = [t.kind == "regression" for t in model.tasks]
        self.log_variances = model.add_weight(shape=(len(model.tasks),), name="log_variances",
                                              initializer="zeros", trainable=True)

    def weights(self) -> tf.Tensor:
        factors = tf.where(tf.constant(self.regression), 0.5, 1.0)
        return factors * tf.exp(-tf.convert_to_tensor(self.log_variances))

    def objective(self, losses) -> tf.Tensor:
        return uncertainty_objective(losses, tf.convert_to_tensor(self.log_variances), self.regression,
                                     num_replicas())

    def logs(self) -> dict:
        return {f"weight_{name}": w for name, w in zip(self.tasks, tf.unstack(self.weights()))}
