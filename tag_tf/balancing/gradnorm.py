"""GradNorm (Chen et al. 2018): task weights learned so that every task's gradient norm on a
shared layer W trains at a rate that matches its relative progress.

After each step (n_i = ‖∇_W c_i·L_i‖₂ on W, L_i(0) the task's first loss):

    G_i = w_i·n_i;  r_i = (L_i/L_i(0)) / mean_j(L_j/L_j(0));  T_i = mean(G)·r_i^α   (held constant)
    L_grad = Σ_i |G_i − T_i|;  ∂L_grad/∂w_i = sign(G_i − T_i)·n_i
    w ← max(w − weight_lr·∂L_grad/∂w, min_weight);  w ← k·w / Σ w

The update of the network uses the weights from before the step.

>>> w, l_grad = gradnorm_step([1.0, 1.0], grad_norms=[2.0, 1.0], losses=[1.0, 1.0],
...                           initial_losses=[1.0, 1.0], alpha=1.5, weight_lr=0.1)
>>> [round(float(v), 4) for v in w], float(l_grad)    # the larger gradient is damped
([0.8421, 1.1579], 1.0)
"""

from __future__ import annotations

import tensorflow as tf

from tag_tf.balancing.base import BalanceInputs, Balancer
from tag_tf.utils.gradients import gradient_dot
from tag_tf.balancing.layer_graph import nearest_shared_layers, shared_layers


def gradnorm_step(weights, grad_norms, losses, initial_losses, alpha: float, weight_lr: float,
                  min_weight: float = 1e-3) -> tuple[tf.Tensor, tf.Tensor]:
    """GradNorm's new task weights (summing to k) and its loss L_grad, from this step's values."""
    w = tf.convert_to_tensor(weights, tf.float32)
    norms = tf.convert_to_tensor(grad_norms, tf.float32)
    ratios = tf.math.divide_no_nan(tf.convert_to_tensor(losses, tf.float32),
                                   tf.convert_to_tensor(initial_losses, tf.float32))
    relative = tf.math.divide_no_nan(ratios, tf.reduce_mean(ratios))
    scaled = w * norms
    target = tf.stop_gradient(tf.reduce_mean(scaled) * relative**alpha)
    grad_loss = tf.reduce_sum(tf.abs(scaled - target))
    new = tf.maximum(w - weight_lr * tf.sign(scaled - target) * norms, min_weight)
    return new * tf.cast(tf.size(new), tf.float32) / tf.reduce_sum(new), grad_loss


class GradNorm(Balancer):
    """Chen et al. 2018 (see the module docstring). Weights start at 1 and always sum to k.

    Args:
      alpha: the asymmetry α (larger pulls slow tasks harder).
      layer: name of the shared layer W whose gradient norms are balanced; None: the shared
        layers with a kernel nearest the outputs (the trunk's last; under soft sharing, every
        column's or expert's last).
      weight_lr: the learning rate of the weights (plain gradient descent on L_grad).
      min_weight: floor of a weight before renormalisation (keeps every weight positive).

    Attributes (after `build`):
      task_weights, initial_losses: the model variables holding w [k] and L(0) [k].

    >>> GradNorm(alpha=1.0).to_json()
    {'name': 'gradnorm', 'alpha': 1.0, 'layer': None, 'weight_lr': 0.025, 'min_weight': 0.001}
    """

    name = "gradnorm"

    def __init__(self, alpha: float = 1.5, layer: str | None = None, weight_lr: float = 0.025,
                 min_weight: float = 1e-3):
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}.")
        if not weight_lr > 0:
            raise ValueError(f"weight_lr must be > 0, got {weight_lr!r}.")
        if not 0 < min_weight < 1:
            raise ValueError(f"min_weight must be in (0, 1), got {min_weight!r}.")
        self.alpha, self.layer, self.weight_lr, self.min_weight = float(alpha), layer, float(weight_lr), float(min_weight)

    def get_config(self) -> dict:
        return {"alpha": self.alpha, "layer": self.layer, "weight_lr": self.weight_lr, "min_weight": self.min_weight}

    def build(self, model) -> None:
        super().build(model)
        self.tasks = [t.name for t in model.tasks]
        state = dict(trainable=False, aggregation="only_first_replica")
        self.task_weights = model.add_weight(shape=(self.num_tasks,), name="gradnorm_weights", initializer="ones",
                                             **state)
        self.initial_losses = model.add_weight(shape=(self.num_tasks,), name="gradnorm_initial_losses",
                                               initializer="zeros", **state)
        if self.num_tasks > 1:  # one task has nothing to balance (and may share no layer)
            self.balanced_variables(model)  # a bad layer name fails now, before any training

    def balanced_variables(self, model) -> list:
        """The trainable variables of W: the named shared layer, or by default the shared layers
        with a kernel nearest the outputs (`layer_graph.nearest_shared_layers`: the trunk's last layer
        under hard sharing; every column's or expert's last under soft sharing, so that no task's
        own column stands for W)."""
        if self.layer is not None:
            layers = shared_layers(model, model.shared_variables)
            chosen = [layer for layer in layers if layer.name == self.layer]
            if not chosen:
                names = [layer.name for layer in layers]
                raise ValueError(f"GradNorm layer {self.layer!r} is not a shared layer with weights; valid "
                                 f"choices: {names}.")
            return chosen[-1].trainable_variables
        nearest = nearest_shared_layers(model, model.shared_variables)
        if not nearest:
            raise ValueError("GradNorm found no shared layer with a kernel; name one with layer=.")
        return [v for layer in nearest for v in layer.trainable_variables]

    def task_gradient_variables(self, model) -> list:
        return self.balanced_variables(model) if self.num_tasks > 1 else []

    def weights(self) -> tf.Tensor:
        return tf.convert_to_tensor(self.task_weights)

    def combine(self, inputs: BalanceInputs) -> tf.Tensor:
        """Update the weights from this step; the update itself uses the weights before it."""
        current = self.weights()
        if not inputs.task_gradients:  # a single task: its weight stays 1
            return current
        norms = tf.stack([tf.sqrt(gradient_dot(g, g)) for g in inputs.task_gradients])
        initial = tf.convert_to_tensor(self.initial_losses)
        initial = tf.where(initial > 0, initial, inputs.losses)  # a task's first loss (once it has labels)
        new, _ = gradnorm_step(current, norms, inputs.losses, initial, self.alpha, self.weight_lr, self.min_weight)
        self.initial_losses.assign(initial)
        self.task_weights.assign(new)
        return current

    def logs(self) -> dict:
        return {f"weight_{name}": w for name, w in zip(self.tasks, tf.unstack(self.weights()))}

