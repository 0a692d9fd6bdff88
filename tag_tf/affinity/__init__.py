"""Inter-task affinity (TAG, Fifty et al. 2021): how much one optimizer step on a task's loss
lowers the other tasks' losses. `A[source, target]`, always in that orientation.

    config.py       AffinityConfig: how affinity is collected during fit()
    adaptive.py     the "auto" schedule's rule (when to collect next) and standard errors: pure
    lookahead.py    the optimizer rules: the step Δi a task's gradient would take, mutating nothing
    estimates.py    Z from losses (exact, first-order) and gradients (cosine), valid samples, means: pure
    groups.py       the candidate groups of mode="group_lookahead" and their membership: pure
    accumulator.py  AffinityAccumulator: the running sums, in model variables
    result.py       TaskAffinity: the measured matrix, per-epoch means, JSON

>>> AffinityConfig(mode="first_order").mode in MODES
True
"""

from tag_tf.affinity.accumulator import AffinityAccumulator
from tag_tf.affinity.adaptive import effective_samples, next_interval, standard_error
from tag_tf.affinity.config import AUTO, MAX_GROUP_LOOKAHEADS, MODES, AffinityConfig
from tag_tf.affinity.estimates import (cosine_affinity, exact_affinity, first_order_affinity, mean_affinity,
                                       valid_samples)
from tag_tf.affinity.groups import candidate_groups, membership
from tag_tf.affinity.lookahead import (SUPPORTED_OPTIMIZERS, adam_delta, check_optimizer, clip_gradients,
                                       current_learning_rate, lookahead_deltas, sgd_delta, unwrap_optimizer)
from tag_tf.affinity.result import TaskAffinity

__all__ = [
    "AUTO", "AffinityAccumulator", "AffinityConfig", "MAX_GROUP_LOOKAHEADS", "MODES", "SUPPORTED_OPTIMIZERS",
    "TaskAffinity", "adam_delta", "candidate_groups", "check_optimizer", "clip_gradients", "cosine_affinity",
    "current_learning_rate", "effective_samples", "exact_affinity", "first_order_affinity", "lookahead_deltas",
    "mean_affinity", "membership", "next_interval", "sgd_delta", "standard_error", "unwrap_optimizer",
    "valid_samples",
]
