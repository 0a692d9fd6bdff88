"""Export: grouped networks as one multi-head SavedModel in TF Serving's layout, checked on TF
Serving's load path before it is visible.

    archive.py      export_multihead: the SavedModel, its signatures, warmup requests, versions
    signatures.py   named inputs, tf.Example parsing: what a served network takes
    check.py        check_version_dir: the version loaded and run through the C API, answers compared
    c_api.py        SavedModelSession: TensorFlow's C API, as TF Serving's C++ loader calls it
    deployment.py   models.config, batching and monitoring files for TF Serving

    from tag_tf.export import export_multihead
    export_multihead([net_a, net_b], {"a": 0, "b": 1}, "export", "tag")
"""

from tag_tf.export.archive import (ANSWERS, TASKS_FILE, check_networks, existing_versions, export_multihead,
                                   keras_reference, next_version, serving_answer)

__all__ = ["ANSWERS", "TASKS_FILE", "check_networks", "existing_versions", "export_multihead", "keras_reference",
           "next_version", "serving_answer"]
