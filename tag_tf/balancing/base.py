"""`Balancer`: how a `MultiTaskModel` turns its per-task losses into one update, and the default,
`EqualWeights`.

A balancer holds its settings (`get_config`) and, once `build` on a model, its state (variables
the model checkpoints). At every training step the model calls one hook, `combine`, with the
step's `BalanceInputs`, and uses the coefficients it returns:

    shared variables θs:     Σ_i coefficient_i · ∇θs(c_i·L_i)     (c_i = Task.weight)
    task i's own variables:  weight_i · ∇(c_i·L_i)                (`weights()`, read before `combine`)
    the balancer's own:      ∇ objective                           (e.g. uncertainty's log σ²)

The per-task gradients a balancer needs are declared by `task_gradient_variables` (none for plain
weighting, one layer for GradNorm, every shared variable for PCGrad). When the model does not
have every task's gradient on every shared variable, it backpropagates `objective` once instead,
so a balancer whose coefficients differ from its `weights` must ask for all shared variables.
A new method (MGDA, CAGrad, ...) is a subclass; the model needs no edit.

>>> EqualWeights().to_json()
{'name': 'equal'}
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class BalanceInputs:
    """What the model hands its balancer at a training step.

    Attributes:
      losses: [k] every task's global loss on this step's batch (mean over its labelled examples,
        all replicas), before `Task.weight`.
      variables: the variables `task_gradients` are taken on: `task_gradient_variables(model)`.
      task_gradients: per task, the gradient of `Task.weight`·(its global loss) on `variables`
        (summed over replicas); None when the balancer asked for none.
      step: the optimizer's iteration.
    """

    losses: tf.Tensor
    variables: list
    task_gradients: list | None
    step: tf.Tensor


class Balancer:
    """Base: equal weighting. Subclasses override what they change (see the module docstring).

    `supports_jit` (like a Keras layer's): whether a step computes the same under XLA;
    `AffinityConfig(jit_compile="auto")` compiles the affinity steps with XLA only when it is True.
    """

    name = "equal"
    supports_jit = True

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
        """Create this balancer's state for `model` (variables through `model.add_weight`, so that
        they are checkpointed with its weights)."""
        self.num_tasks = len(model.tasks)

    @property
    def metrics(self) -> list:
        """Keras metrics the model tracks (reset every epoch) for this balancer."""
        return []

    def task_gradient_variables(self, model) -> list:
        """The variables on which `combine` needs every task's gradient ([] for none)."""
        return []

    def weights(self) -> tf.Tensor:
        """The current per-task multipliers of `Task.weight`·L_i ([k], ones for equal weights)."""
        return tf.ones(self.num_tasks)

    def objective(self, losses) -> tf.Tensor:
        """The training objective from the (Task.weight-scaled) per-task losses [k]."""
        return tf.reduce_sum(self.weights() * losses)

    def combine(self, inputs: BalanceInputs) -> tf.Tensor:
        """The hook: coefficients [k] of the (Task.weight-scaled) task gradients on the shared
        variables for this step. Balancers with state update it here, after reading it."""
        return self.weights()

    def logs(self) -> dict:
        """Values for the fit history and TensorBoard."""
        return {}


class EqualWeights(Balancer):
    """Σ_i Task.weight_i · L_i: the default.

    >>> import numpy as np
    >>> balancer = EqualWeights()
    >>> balancer.num_tasks = 2              # what build(model) records for a two-task model
    >>> float(balancer.objective(np.array([0.5, 1.5], "float32")))
    2.0
    """
