"""Loss balancing: how a `MultiTaskModel` turns its per-task losses into one update.

    EqualWeights          Σ_i c_i·L_i                      (c_i = Task.weight; the default)
    UncertaintyWeighting  Σ_i c_i·f_i·(exp(−s_i)·L_i + s_i)  Kendall et al. 2018; s_i = log σ_i² learned,
                                                           f_i = 1/2 for regression tasks, 1 otherwise
    GradNorm              Σ_i w_i·c_i·L_i, w learned       Chen et al. 2018 (rule below)
    PCGrad                Σ_i (projected ∇ c_i·L_i)         Yu et al. 2020 (rule below)

`Task.weight` (c_i) scales each task's loss before any balancer. Affinity (`tag_tf.affinity`) is
always measured on the unweighted per-task losses, so it means the same whatever the balancer.

GradNorm, after each step (n_i = ‖∇_W L_i‖₂ on the last shared layer W, L_i(0) the first loss):

    G_i = w_i·n_i;  r_i = (L_i/L_i(0)) / mean_j(L_j/L_j(0));  T_i = mean(G)·r_i^α   (held constant)
    L_grad = Σ_i |G_i − T_i|;  ∂L_grad/∂w_i = sign(G_i − T_i)·n_i
    w ← max(w − weight_lr·∂L_grad/∂w, min_weight);  w ← k·w / Σ w

PCGrad: each task's shared gradient g_i is projected, in a random order of the other tasks j, off
every g_j it conflicts with: if g_i'·g_j < 0, g_i' ← g_i' − (g_i'·g_j / ‖g_j‖²)·g_j; the update is
Σ_i g_i'. Every g_i' is a combination of the original gradients, so the projections run on their
Gram matrix (k×k), never on parameter-sized vectors; heads get their own task's gradient.

The math is in pure functions (`uncertainty_objective`, `gradnorm_step`, `pcgrad_coefficients`);
the classes hold the settings (`get_config`) and the model's balancing variables.

>>> import numpy as np
>>> # two conflicting gradients: each loses its component along the other
>>> gram = np.array([[1.0, -0.5], [-0.5, 1.0]])
>>> a, conflicts = pcgrad_coefficients(gram, orders=np.array([[0, 1], [1, 0]]))
>>> a.numpy().tolist(), int(conflicts)
([[1.0, 0.5], [0.5, 1.0]], 2)
>>> float(uncertainty_objective(np.array([2.0]), np.array([0.0]), np.array([False])))
2.0
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tag_tf.affinity import gradient_dot

BALANCERS = ("equal", "gradnorm", "uncertainty", "pcgrad")


# --- the math -----------------------------------------------------------------------------------


def uncertainty_objective(losses, log_variances, regression, replicas: int = 1) -> tf.Tensor:
    """Σ_i f_i·(exp(−s_i)·L_i + s_i / replicas), f_i = 1/2 for regression tasks and 1 otherwise
    (Kendall et al.). Under a strategy each replica passes its share of the losses and adds its
    share of the s_i terms, so that the replicas' sum is the objective."""
    losses = tf.convert_to_tensor(losses, tf.float32)
    s = tf.convert_to_tensor(log_variances, tf.float32)
    factor = tf.where(tf.convert_to_tensor(regression), 0.5, 1.0)
    return tf.reduce_sum(factor * (tf.exp(-s) * losses + s / replicas))


def gradnorm_step(weights, grad_norms, losses, initial_losses, alpha: float, weight_lr: float,
                  min_weight: float = 1e-3) -> tuple[tf.Tensor, tf.Tensor]:
    """GradNorm's new task weights (summing to k) and its loss L_grad, from this step's values.

    >>> w, l_grad = gradnorm_step([1.0, 1.0], grad_norms=[2.0, 1.0], losses=[1.0, 1.0],
    ...                           initial_losses=[1.0, 1.0], alpha=1.5, weight_lr=0.1)
    >>> [round(float(v), 4) for v in w], float(l_grad)    # the larger gradient is damped
    ([0.8421, 1.1579], 1.0)
    """
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


def pcgrad_coefficients(gram, orders) -> tuple[tf.Tensor, tf.Tensor]:
    """PCGrad in the span of the task gradients: A[i, m] with g_i' = Σ_m A[i, m]·g_m, and the
    number of projections made.

    Args:
      gram: [k, k] Gram matrix of the task gradients, gram[i, j] = g_i · g_j.
      orders: [k, k] int; row i is the order in which task i visits the tasks (i itself is skipped).
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    orders = tf.convert_to_tensor(orders, tf.int32)
    k = gram.shape[0]
    rows, conflicts = [], tf.constant(0.0)
    for i in range(k):
        a = tf.one_hot(i, k)
        for p in range(k):
            j = orders[i, p]
            dot = tf.tensordot(a, tf.gather(gram, j, axis=1), 1)
            conflict = tf.logical_and(dot < 0, tf.not_equal(j, i))
            step = tf.where(conflict, tf.math.divide_no_nan(dot, tf.gather_nd(gram, [j, j])), 0.0)
            a = a - step * tf.one_hot(j, k)
            conflicts += tf.cast(conflict, tf.float32)
        rows.append(a)
    return tf.stack(rows), conflicts


def conflicting_share(gram) -> tf.Tensor:
    """The share of task pairs i < j whose gradients conflict (g_i · g_j < 0)."""
    gram = tf.convert_to_tensor(gram, tf.float32)
    k = gram.shape[0]
    upper = tf.linalg.band_part(tf.ones((k, k)), 0, -1) - tf.eye(k)
    return tf.reduce_sum(tf.where(gram < 0, upper, 0.0)) / max(k * (k - 1) / 2, 1)


# --- the balancers ------------------------------------------------------------------------------


class Balancer:
    """Base: equal weighting. A balancer is stateless apart from the variables it adds to the model
    in `build`; the model calls `objective` (inside its gradient tape) and `combine` (after it).

    Attributes:
      needs_task_gradients: "shared" if `combine` needs every task's gradient on the shared
        variables (PCGrad), "last_layer" if only on the last shared layer (GradNorm), else None.
    """

    name = "equal"
    needs_task_gradients: str | None = None

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Balancer":
        return cls(**config)

    def to_json(self) -> dict:
        return {"name": self.name, **self.get_config()}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def build(self, model) -> None:
        """Add this balancer's variables to `model` (checkpointed with its weights)."""

    def weights(self, model) -> tf.Tensor:
        """The current per-task multipliers of `Task.weight`·L_i ([k], ones for equal weights)."""
        return tf.ones(len(model.tasks))

    def objective(self, model, losses) -> tf.Tensor:
        """The training objective from the (Task.weight-scaled) per-task losses [k]."""
        return tf.reduce_sum(self.weights(model) * losses)

    def combine(self, model, variables, global_task_gradients, losses, step) -> tf.Tensor:
        """Coefficients [k] of the (Task.weight-scaled) task gradients on the shared variables.

        Args:
          variables: the variables `global_task_gradients` are taken on.
          global_task_gradients: per task, its gradient on `variables`, summed over replicas (the
            gradient of the global loss), or None when `needs_task_gradients` is None.
          losses: [k] the global per-task losses of this step.
          step: the optimizer's iteration.
        Balancers with state (GradNorm) update it here, after the coefficients are read.
        """
        return self.weights(model)

    def logs(self, model) -> dict:
        """Values for the fit history and TensorBoard."""
        return {}


class EqualWeights(Balancer):
    """Σ_i Task.weight_i · L_i: the default.

    >>> EqualWeights().to_json()
    {'name': 'equal'}
    """


class UncertaintyWeighting(Balancer):
    """Kendall et al. 2018: Σ_i f_i·(exp(−s_i)·L_i + s_i), s_i = log σ_i² learned with the network
    (initialised at 0), f_i = 1/2 for regression tasks. Logs `weight_<task>` = f_i·exp(−s_i).

    >>> UncertaintyWeighting().to_json()
    {'name': 'uncertainty'}
    """

    name = "uncertainty"

    def build(self, model) -> None:
        model.log_variances = model.add_weight(shape=(len(model.tasks),), name="log_variances",
                                               initializer="zeros", trainable=True)

    def _factors(self, model) -> tf.Tensor:
        return tf.constant([0.5 if t.kind == "regression" else 1.0 for t in model.tasks])

    def weights(self, model) -> tf.Tensor:
        return self._factors(model) * tf.exp(-tf.convert_to_tensor(model.log_variances))

    def objective(self, model, losses) -> tf.Tensor:
        regression = [t.kind == "regression" for t in model.tasks]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return uncertainty_objective(losses, tf.convert_to_tensor(model.log_variances), regression, replicas)

    def logs(self, model) -> dict:
        return {f"weight_{t.name}": w for t, w in zip(model.tasks, tf.unstack(self.weights(model)))}


class GradNorm(Balancer):
    """Chen et al. 2018 (see the module docstring). Weights start at 1 and always sum to k.

    Args:
      alpha: the asymmetry α (larger pulls slow tasks harder).
      layer: name of the shared layer W whose gradient norms are balanced; None: the last layer
        of the trunk that has a kernel.
      weight_lr: the learning rate of the weights (plain gradient descent on L_grad).
      min_weight: floor of a weight before renormalisation (keeps every weight positive).

    >>> GradNorm(alpha=1.0).to_json()
    {'name': 'gradnorm', 'alpha': 1.0, 'layer': None, 'weight_lr': 0.025, 'min_weight': 0.001}
    """

    name = "gradnorm"
    needs_task_gradients = "last_layer"

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
        k = len(model.tasks)
        state = dict(trainable=False, aggregation="only_first_replica")
        model.gradnorm_weights = model.add_weight(shape=(k,), name="gradnorm_weights", initializer="ones", **state)
        model.gradnorm_initial_losses = model.add_weight(shape=(k,), name="gradnorm_initial_losses",
                                                         initializer="zeros", **state)
        self.balanced_variables(model)  # a bad layer name fails now, before any training

    def balanced_variables(self, model) -> list:
        """The trainable variables of W (the shared layer whose gradient norms are balanced)."""
        layers = [layer for shared in model.shared_layers for layer in _flatten_layers(shared)]
        if self.layer is not None:
            chosen = [layer for layer in layers if layer.name == self.layer and layer.trainable_variables]
            if not chosen:
                names = [layer.name for layer in layers if layer.trainable_variables]
                raise ValueError(f"GradNorm layer {self.layer!r} is not a shared layer with weights; valid "
                                 f"choices: {names}.")
            return chosen[-1].trainable_variables
        with_kernel = [layer for layer in layers if hasattr(layer, "kernel") and layer.trainable_variables]
        if not with_kernel:
            raise ValueError("GradNorm found no shared layer with a kernel; name one with layer=.")
        return with_kernel[-1].trainable_variables

    def weights(self, model) -> tf.Tensor:
        return tf.convert_to_tensor(model.gradnorm_weights)

    def combine(self, model, variables, global_task_gradients, losses, step) -> tf.Tensor:
        """Update the weights from this step; the update itself used the weights before it."""
        current = self.weights(model)
        balanced = {id(v) for v in self.balanced_variables(model)}
        on_layer = [[g for v, g in zip(variables, grads) if id(v) in balanced] for grads in global_task_gradients]
        norms = tf.stack([tf.sqrt(gradient_dot(g, g)) for g in on_layer])
        initial = tf.convert_to_tensor(model.gradnorm_initial_losses)
        initial = tf.where(initial > 0, initial, losses)  # a task's first loss (once it has labels)
        new, _ = gradnorm_step(current, norms, losses, initial, self.alpha, self.weight_lr, self.min_weight)
        model.gradnorm_initial_losses.assign(initial)
        model.gradnorm_weights.assign(new)
        return current

    def logs(self, model) -> dict:
        return {f"weight_{t.name}": w for t, w in zip(model.tasks, tf.unstack(self.weights(model)))}


class PCGrad(Balancer):
    """Yu et al. 2020 (see the module docstring): conflicting task gradients on the shared
    variables are projected off each other, in a random order per task and step (seeded, the
    same on every replica). Logs `pcgrad_conflicts`: the epoch's mean share of task pairs whose
    gradients conflict.

    >>> PCGrad(seed=3).to_json()
    {'name': 'pcgrad', 'seed': 3}
    """

    name = "pcgrad"
    needs_task_gradients = "shared"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}

    def build(self, model) -> None:
        model.pcgrad_conflicts = keras.metrics.Mean(name="pcgrad_conflicts")

    def orders(self, k: int, step) -> tf.Tensor:
        """[k, k]: a random permutation of the tasks per task, from (seed, step)."""
        noise = tf.random.stateless_uniform((k, k), seed=tf.stack([tf.constant(self.seed, tf.int64),
                                                                   tf.cast(step, tf.int64)]))
        return tf.cast(tf.argsort(noise, axis=1), tf.int32)

    def combine(self, model, variables, global_task_gradients, losses, step) -> tf.Tensor:
        k = len(model.tasks)
        gram = tf.stack([tf.stack([gradient_dot(a, b) for b in global_task_gradients]) for a in global_task_gradients])
        coefficients, _ = pcgrad_coefficients(gram, self.orders(k, step))
        model.pcgrad_conflicts.update_state(conflicting_share(gram))
        return tf.reduce_sum(coefficients, axis=0)

    def logs(self, model) -> dict:
        return {"pcgrad_conflicts": model.pcgrad_conflicts.result()}


def balancer_from_name(name: str, **kwargs) -> Balancer:
    """The balancer called `name` (one of `BALANCERS`), with its default settings unless given.

    >>> balancer_from_name("gradnorm", alpha=1.5)
    GradNorm(alpha=1.5, layer=None, weight_lr=0.025, min_weight=0.001)
    """
    classes = {cls.name: cls for cls in (EqualWeights, UncertaintyWeighting, GradNorm, PCGrad)}
    if name not in classes:
        raise ValueError(f"Unknown balancer {name!r}; valid choices: {BALANCERS}.")
    return classes[name](**kwargs)


def balancer_from_json(data: dict | None) -> Balancer:
    """Inverse of `Balancer.to_json` (None: equal weights)."""
    if data is None:
        return EqualWeights()
    data = dict(data)
    return balancer_from_name(data.pop("name"), **data)


def _flatten_layers(layer) -> list:
    """`layer` and, for a nested model, its layers in order, depth first."""
    inner = getattr(layer, "layers", None)
    return [layer] if not inner else [sub for child in inner for sub in _flatten_layers(child)]
