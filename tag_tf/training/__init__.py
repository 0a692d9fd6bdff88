"""Multi-task training: the model, its affinity schedule, callbacks, and a distributed loop.

    model.py      MultiTaskModel: one train_step (balancer hook, optional affinity collection)
    schedule.py   AffinitySchedule: which optimizer steps collect affinity (fit and the loop)
    callbacks.py  AffinityEpochs, AffinityLogger, EpochSummary
    loop.py       fit_distributed: the loop for MultiWorkerMirroredStrategy
"""

from tag_tf.training.callbacks import AffinityEpochs, AffinityLogger, EpochSummary
from tag_tf.training.loop import evaluate_distributed, fit_distributed
from tag_tf.training.model import MultiTaskModel, head_name
from tag_tf.training.schedule import AffinitySchedule

__all__ = ["AffinityEpochs", "AffinityLogger", "AffinitySchedule", "EpochSummary", "MultiTaskModel",
           "evaluate_distributed", "fit_distributed", "head_name"]
