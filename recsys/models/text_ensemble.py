"""`TextEnsemble`: several trained `TextClassifier`s, probabilities averaged."""

from typing import Any

import keras
from keras import ops

from recsys.models.text_classifier import TextClassifier


@keras.saving.register_keras_serializable(package="recsys")
class TextEnsemble(keras.Model):
    """The mean of several classifiers' probabilities over the same tokens.

    Each member is a `TextClassifier` trained on its own (its own
    architecture, initialization and early stopping); the ensemble only
    averages what they predict. Models that read the tokens differently
    make different errors: on the tweets task the best single model tests
    at 0.9356 AUC, and a tuned convolution + flatten ensemble at 0.9431
    over three seeds (benchmarks/RESULTS.md). It saves and loads as one
    Keras model.

    Args:
        members: list of `TextClassifier`, all with the same
            `sequence_length` and `num_classes`.

    Input shape:
        `(batch, sequence_length)` integer token ids (or a dict holding
        them), as each member takes.

    Output shape:
        The members' output shape: `(batch, 1)` or `(batch, num_classes)`.

    Example:

    ```python
    ensemble = TextEnsemble([conv_model, flatten_model])
    ensemble.predict(token_ids)
    ```
    """

    def __init__(self, members: list[TextClassifier], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not members:
            raise ValueError("`members` must hold at least one classifier.")
        for member in members:
            if not isinstance(member, TextClassifier):
                raise ValueError(
                    "Every member must be a `TextClassifier`. Received: "
                    f"{type(member).__name__}"
                )
        for name in ("sequence_length", "num_classes"):
            values = {getattr(member, name) for member in members}
            if len(values) > 1:
                raise ValueError(
                    f"Every member must have the same `{name}`. "
                    f"Received: {sorted(values)}"
                )
        self.members = list(members)
        self.num_classes = members[0].num_classes
        self.sequence_length = members[0].sequence_length
        self.architecture = "+".join(m.architecture for m in members)
        self.built = True  # the members are built

    @property
    def embedding(self) -> Any:
        """The first member's token embedding (for `similar_words`)."""
        return self.members[0].embedding

    def call(self, inputs: Any, training: bool = False) -> Any:
        """The members' mean class probabilities for a batch of token ids."""
        outputs = [member(inputs, training=training) for member in self.members]
        return ops.mean(ops.stack(outputs, axis=0), axis=0)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["members"] = [
            keras.saving.serialize_keras_object(member)
            for member in self.members
        ]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TextEnsemble":
        config = dict(config)
        members = [
            keras.saving.deserialize_keras_object(member)
            for member in config.pop("members")
        ]
        return cls(members, **config)
