"""Check a SavedModel version directory the way TF Serving loads it (`tag_tf.export.check`).

    python -m serving.check runs/demo/export/tag_k3/1

Loads the version through TensorFlow's C API (`TF_LoadSessionFromSavedModel`, tag `serve`), runs
every signature on sample inputs by the SignatureDef's tensor names, compares the answers with
Python's `tf.saved_model.load` of the same directory, and replays
`assets.extra/tf_serving_warmup_requests`. Prints one line per signature; exit status 0 when the
version passes, 1 (and the reason on stderr) when it does not.

>>> from tag_tf.export.check import CheckReport
>>> print(report_text(CheckReport("m/1", "tf.saved_model.load", {"serving_default": 2.5e-7}, 2)))
m/1: loads through the C API (tag 'serve'), as TF Serving loads it
  serving_default  max |C API - tf.saved_model.load| = 2.5e-07
  2 warmup request(s) replayed
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tag_tf.export.check import CheckReport, ExportCheckError, check_version_dir  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_float("atol", 1e-5, "Largest absolute difference accepted between the two load paths.")


def report_text(report: CheckReport) -> str:
    lines = [f"{report.path}: loads through the C API (tag 'serve'), as TF Serving loads it"]
    lines += [f"  {name}  max |C API - {report.reference}| = {error:.2g}" for name, error in report.max_abs_error.items()]
    lines.append(f"  {report.warmup_requests} warmup request(s) replayed")
    return "\n".join(lines)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Give one version directory: python -m serving.check <export>/<model>/<version>")
    path = argv[1]
    if not os.path.isdir(path):
        print(f"{path}: no such directory.", file=sys.stderr)
        return 1
    try:
        print(report_text(check_version_dir(path, atol=FLAGS.atol)))
    except ExportCheckError as error:
        print(f"FAILED {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
