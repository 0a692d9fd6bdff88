"""Multi-task training: the model, its affinity schedule, callbacks, and a distributed loop.

    model.py      MultiTaskModel: one train_step (balancer hook, optional affinity collection)
    roles.py      VariableRoles: shared and task-specific variables, from the model's structure
    schedule.py   AffinitySchedule: which optimizer steps collect affinity (fit and the loop)
    callbacks.py  AffinityEpochs, AffinitySteps, AffinityLogger, EpochSummary
    loop.py       fit_distributed: the loop for MultiWorkerMirroredStrategy
"""

from tag_tf.training.callbacks import AffinityEpochs, AffinityLogger, AffinitySteps, EpochSummary
from tag_tf.training.loop import evaluate_distributed, fit_distributed
from tag_tf.training.model import MultiTaskModel
from tag_tf.training.roles import VariableRoles
from tag_tf.training.schedule import AffinitySchedule

__all__ = ["AffinityEpochs", "AffinityLogger", "AffinitySchedule", "AffinitySteps", "EpochSummary", "MultiTaskModel",
           "VariableRoles", "evaluate_distributed", "fit_distributed"]
