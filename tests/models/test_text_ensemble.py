import keras
import numpy as np
import pytest

from recsys.models import TextClassifier
from recsys.models import TextEnsemble
from tests.battery import run_serialization_battery

IDS = np.array([[3, 4, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0]])


def _member(architecture, seed, **kwargs):
    keras.utils.set_random_seed(seed)
    defaults = {"input_dim": 10, "sequence_length": 6, "embedding_dim": 4}
    return TextClassifier(
        **{**defaults, "kernel_size": 3, "architecture": architecture, **kwargs}
    )


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_text_ensemble_averages_its_members(num_classes):
    members = [
        _member("conv1d", 0, num_classes=num_classes),
        _member("flatten", 1, num_classes=num_classes),
    ]
    ensemble = TextEnsemble(members)
    expected = np.mean([_numpy(m(IDS)) for m in members], axis=0)
    out = _numpy(ensemble(IDS))
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # Distinct members: the mean is neither one of them.
    assert not np.allclose(out, _numpy(members[0](IDS)))
    assert ensemble.architecture == "conv1d+flatten"
    assert ensemble.embedding is members[0].embedding


def test_text_ensemble_serialization(tmp_path):
    ensemble = TextEnsemble([_member("conv1d", 0), _member("mean_pool", 1)])
    run_serialization_battery(ensemble, IDS, tmp_path)


@pytest.mark.parametrize(
    "members, match",
    [
        ([], "at least one"),
        ([keras.layers.Dense(1)], "must be a `TextClassifier`"),
        (
            [_member("conv1d", 0), _member("conv1d", 0, sequence_length=5)],
            "sequence_length",
        ),
        (
            [_member("conv1d", 0), _member("conv1d", 0, num_classes=3)],
            "num_classes",
        ),
    ],
)
def test_text_ensemble_rejects_members_that_do_not_fit(members, match):
    with pytest.raises(ValueError, match=match):
        TextEnsemble(members)
