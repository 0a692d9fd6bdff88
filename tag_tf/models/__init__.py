"""Models: trunks, any Keras model wrapped as a `MultiTaskModel`, and the multi-task architectures.

    build.py          celeba_resnet_trunk, mlp_trunk, wrap, build_multitask_model, inference_flops
    architectures/    hard sharing, cross-stitch, MMoE, PAD-Net (dict-output Keras models)

>>> from tag_tf.tasks import Task
>>> [t.name for t in build_multitask_model(mlp_trunk(4, hidden=(8,)), [Task("a"), Task("b")]).tasks]
['a', 'b']
"""

from tag_tf.models.build import (HEAD_PREFIX, build_multitask_model, celeba_resnet_trunk, head_name, inference_flops,
                                 mlp_trunk, wrap)

__all__ = ["HEAD_PREFIX", "build_multitask_model", "celeba_resnet_trunk", "head_name", "inference_flops", "mlp_trunk",
           "wrap"]
