import keras
import numpy as np
import pytest

from recsys.layers import RemoveAccidentalHits


def test_remove_accidental_hits_masks_duplicates_of_the_positive():
    logits = np.zeros((3, 3), "float32")
    labels = np.eye(3, dtype="float32")
    ids = np.array([5, 5, 7])
    out = keras.ops.convert_to_numpy(
        RemoveAccidentalHits()(logits, labels, ids)
    )
    # Rows 0 and 1 share item 5: each masks the other, never itself.
    assert out[0, 1] < -1e30 and out[1, 0] < -1e30
    np.testing.assert_array_equal(np.diag(out), 0)
    np.testing.assert_array_equal(out[2], 0)
    np.testing.assert_array_equal(out[0, 2], 0)


def test_remove_accidental_hits_gives_zero_probability():
    logits = np.ones((2, 2), "float32")
    out = RemoveAccidentalHits()(
        logits, np.eye(2, dtype="float32"), np.array([1, 1])
    )
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(out, axis=-1))
    np.testing.assert_allclose(probs, np.eye(2), atol=1e-6)


def test_remove_accidental_hits_mask_equals_call_with_identity_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 64)).astype("float32")
    ids = rng.integers(0, 8, 64)  # many duplicates
    layer = RemoveAccidentalHits()
    called = layer(logits, np.eye(64, dtype="float32"), ids)
    masked = layer.mask(logits, ids)
    called, masked = (keras.ops.convert_to_numpy(a) for a in (called, masked))
    np.testing.assert_array_equal(masked < -1e30, called < -1e30)
    keep = masked > -1e30
    np.testing.assert_array_equal(masked[keep], logits[keep])
    np.testing.assert_array_equal(np.diag(masked), np.diag(logits))


def test_remove_accidental_hits_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        RemoveAccidentalHits()(
            np.zeros((2, 3), "float32"),
            np.eye(2, dtype="float32"),
            np.arange(3),
        )


def test_remove_accidental_hits_config_round_trip():
    layer = RemoveAccidentalHits(name="hits")
    clone = RemoveAccidentalHits.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_hits_are_masked_in_half_precision_without_nan(dtype):
    # float16 has no -3.4e36: the mask was -inf, and 0 * -inf made every
    # other logit NaN (the positives included).
    logits = keras.ops.cast(np.array([[2.0, 1.0], [1.0, 3.0]]), dtype)
    layer = RemoveAccidentalHits()
    ids = np.array([4, 4])
    for out in (
        layer(logits, np.eye(2, dtype="float32"), ids),
        layer.mask(logits, ids),
    ):
        out = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(np.diag(out), [2.0, 3.0])
        assert out[0, 1] < -1e4 and out[1, 0] < -1e4
