import contextlib

import keras
import numpy as np
import pytest

from recsys.config import load_config
from recsys.data.sources import load_interactions
from recsys.kinds.two_tower import prepare_data
from recsys.training.precision import precision_scope
from recsys.training.two_tower import build_two_tower
from recsys.training.two_tower import fit_two_tower

CONFIG = "configs/movielens_two_tower.toml"


@pytest.mark.parametrize(
    "mode, half",
    [
        ("bfloat16", "bfloat16"),
        pytest.param("float16", "float16", marks=pytest.mark.slow),
    ],
)
def test_mixed_precision_trains_half_activations_float32_weights(
    mode, half, tmp_path
):
    config = load_config(
        CONFIG, ["train.epochs=2", f'train.mixed_precision="{mode}"']
    )
    frame = load_interactions("movielens")
    prepared = prepare_data(config, frame[frame["userId"] <= 30])
    with precision_scope(config):
        model = build_two_tower(prepared.preprocessor, config)
        history = []
        probe = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: history.append(logs["loss"])
        )
        # float16 scales the loss, which has no row-wise rule: the tables
        # are updated densely, and the user is told so.
        warns = (
            pytest.warns(UserWarning, match="loss scaling")
            if mode == "float16"
            else contextlib.nullcontext()
        )
        with warns:
            fit_two_tower(
                model,
                prepared.inputs,
                config,
                callbacks=[probe],
                progress=False,
            )
    assert keras.config.dtype_policy().name == "float32"  # restored
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    users = model.query_tower({k: v[:4] for k, v in prepared.inputs.items()})
    assert keras.backend.standardize_dtype(users.dtype) == half
    assert np.isfinite(history).all() and history[-1] < history[0]
    if mode == "float16":  # Keras scales the float16 loss
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    # Reloaded, a tower computes what it did: its tables came back in
    # float32 and a bundle's items, embedded again, moved (`recsys index`).
    path = str(tmp_path / "tower.keras")
    model.candidate_tower.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded(prepared.item_inputs)),
        keras.ops.convert_to_numpy(model.candidate_tower(prepared.item_inputs)),
    )


def test_precision_scope_rejects_unknown_mode():
    config = {"train": {"mixed_precision": "int8"}}
    with pytest.raises(ValueError, match="train.mixed_precision"):
        with precision_scope(config):
            pass
