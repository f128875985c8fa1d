import keras
import pytest

from recsys.config import SUPPORTED_OPTIMIZERS
from recsys.training.optimizers import OPTIMIZER_SLOTS
from recsys.training.optimizers import OPTIMIZERS
from recsys.training.optimizers import make_optimizer


def test_every_name_the_config_accepts_has_an_optimizer():
    assert sorted(OPTIMIZERS) == sorted(SUPPORTED_OPTIMIZERS)
    assert sorted(OPTIMIZER_SLOTS) == sorted(OPTIMIZERS)


@pytest.mark.parametrize(
    "name, cls",
    [
        ("adagrad", keras.optimizers.Adagrad),
        ("adam", keras.optimizers.Adam),
        ("sgd", keras.optimizers.SGD),
    ],
)
def test_make_optimizer_builds_the_class_with_keras_defaults(name, cls):
    optimizer = make_optimizer(name, 0.25)
    assert type(optimizer) is cls
    assert float(optimizer.learning_rate) == pytest.approx(0.25)
    # Everything but the learning rate is Keras' default, so training runs
    # are the same as with `cls(learning_rate)`.
    expected = cls(0.25).get_config()
    got = optimizer.get_config()
    expected.pop("name"), got.pop("name")
    assert got == expected


def test_make_optimizer_returns_a_new_optimizer_each_call():
    assert make_optimizer("adam", 0.1) is not make_optimizer("adam", 0.1)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="one of .*'adagrad'.*Received: "):
        make_optimizer("lion", 0.1)


def test_an_integer_learning_rate_is_a_float_rate():
    # A config keeps `learning_rate = 1` an integer; Keras refuses ints.
    optimizer = make_optimizer("sgd", 1)
    assert float(optimizer.learning_rate) == 1.0
