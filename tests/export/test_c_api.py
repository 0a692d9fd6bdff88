"""SavedModels through TensorFlow's C API (TF Serving's load path) against independent values."""

import numpy as np
import pytest
import tensorflow as tf

from tag_tf.export.c_api import CApiError, SavedModelSession


class Strings(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([None, 2], tf.int64, name="n")])
    def __call__(self, text, n):
        return {"joined": tf.strings.join([text, "!"]), "length": tf.strings.length(text), "total": tf.reduce_sum(n, 1)}


@pytest.fixture(scope="module")
def strings_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("strings"))
    module = Strings()
    tf.saved_model.save(module, path, signatures=module.__call__)
    return path


def test_strings_and_integers_round_trip(strings_model):
    long = b"x" * 100  # beyond TF_TString's inline capacity: heap storage
    with SavedModelSession(strings_model) as session:
        out = session.run("serving_default", {"text": np.array([b"ab", long, b""], object),
                                              "n": np.array([[1, 2], [3, 4], [5, -6]])})
    assert out["joined"].tolist() == [b"ab!", long + b"!", b"!"]
    assert out["length"].tolist() == [2, 100, 0] and out["length"].dtype == np.int32
    assert out["total"].tolist() == [3, 7, -1] and out["total"].dtype == np.int64


def test_errors_name_the_problem(strings_model, tmp_path):
    with pytest.raises(CApiError, match="Could not find SavedModel .pb or .pbtxt") as error:
        SavedModelSession(str(tmp_path))
    assert error.value.code == 5  # NOT_FOUND
    with pytest.raises(CApiError, match="tags \\['train'\\]"):
        SavedModelSession(strings_model, tags=("train",))
    with SavedModelSession(strings_model) as session:
        with pytest.raises(ValueError, match=r"No signature 'nope'; signatures: \['serving_default'\]"):
            session.run("nope", {})
        with pytest.raises(ValueError, match=r"takes inputs \['n', 'text'\], got \['text'\]"):
            session.run("serving_default", {"text": np.array([b"a"], object)})
        # like TF Serving, the session feeds what it is given: the kernel rejects a rank-1 `n` (axis 1)
        with pytest.raises(CApiError, match="running signature 'serving_default'") as error:
            session.run("serving_default", {"text": np.array([b"a"], object), "n": np.ones(2, np.int64)})
        assert error.value.code == 3  # INVALID_ARGUMENT
        # the session still answers after a failed run
        assert session.run("serving_default", {"text": np.array([b"c"], object), "n": np.ones((1, 2), np.int64)})["total"].tolist() == [2]
