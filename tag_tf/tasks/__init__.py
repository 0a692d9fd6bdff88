"""Tasks: what each head predicts, its loss, its metrics and its label mask.

    task.py           Task (a frozen description), as_tasks, masked_mean, lower_is_better
    dense.py          per-pixel masks, losses and label checks of the dense kinds: pure
    dense_metrics.py  the dense kinds' metrics: pure maths and replica-safe Keras metrics

>>> Task("age", kind="regression").output_units
1
"""

from tag_tf.tasks import dense, dense_metrics
from tag_tf.tasks.task import (DEFAULT_IGNORE_LABEL, DENSE_KINDS, FLAT_KINDS, KINDS, METRICS, Task, as_tasks,
                               lower_is_better, masked_mean)

__all__ = ["DEFAULT_IGNORE_LABEL", "DENSE_KINDS", "FLAT_KINDS", "KINDS", "METRICS", "Task", "as_tasks", "dense",
           "dense_metrics", "lower_is_better", "masked_mean"]
