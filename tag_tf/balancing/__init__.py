"""Loss balancing: how a `MultiTaskModel` turns its per-task losses into one update.

    EqualWeights          Σ_i c_i·L_i                      (c_i = Task.weight; the default)
    UncertaintyWeighting  Σ_i c_i·f_i·(exp(−s_i)·L_i + s_i)  Kendall et al. 2018; s_i = log σ_i² learned
    GradNorm              Σ_i w_i·c_i·L_i, w learned       Chen et al. 2018
    PCGrad                Σ_i (projected ∇ c_i·L_i)         Yu et al. 2020

One module per method; `base.py` states the hook the model calls. `Task.weight` (c_i) scales
each task's loss before any balancer. Affinity (`tag_tf.affinity`) is always measured on the
unweighted per-task losses, so it means the same whatever the balancer.
"""

from tag_tf.balancing.base import BalanceInputs, Balancer, EqualWeights
from tag_tf.balancing.gradnorm import GradNorm, gradnorm_step
from tag_tf.balancing.pcgrad import PCGrad, conflicting_share, pcgrad_coefficients
from tag_tf.balancing.uncertainty import UncertaintyWeighting, uncertainty_objective

BALANCER_CLASSES = (EqualWeights, GradNorm, UncertaintyWeighting, PCGrad)
BALANCERS = tuple(cls.name for cls in BALANCER_CLASSES)


def balancer_from_name(name: str, **kwargs) -> Balancer:
    """The balancer called `name` (one of `BALANCERS`), with its default settings unless given.

    >>> balancer_from_name("gradnorm", alpha=1.5)
    GradNorm(alpha=1.5, layer=None, weight_lr=0.025, min_weight=0.001)
    """
    classes = {cls.name: cls for cls in BALANCER_CLASSES}
    if name not in classes:
        raise ValueError(f"Unknown balancer {name!r}; valid choices: {BALANCERS}.")
    return classes[name](**kwargs)


def balancer_from_json(data: dict | None) -> Balancer:
    """Inverse of `Balancer.to_json` (None: equal weights).

    >>> balancer_from_json({"name": "pcgrad", "seed": 2})
    PCGrad(seed=2)
    """
    if data is None:
        return EqualWeights()
    data = dict(data)
    return balancer_from_name(data.pop("name"), **data)


__all__ = [
    "BALANCERS", "BalanceInputs", "Balancer", "EqualWeights", "GradNorm", "PCGrad", "UncertaintyWeighting",
    "balancer_from_json", "balancer_from_name", "conflicting_share", "gradnorm_step", "pcgrad_coefficients",
    "uncertainty_objective",
]
