"""`TextClassifier`: token sequences -> classes, the seed's four models."""

from typing import Any

import keras
import numpy as np
from keras import ops

from recsys.layers.pooled_embedding import PooledEmbedding
from recsys.models.sparse_updates import SparseRowUpdates

SUPPORTED_ARCHITECTURES = ("mean_pool", "flatten", "lstm", "conv1d")


@keras.saving.register_keras_serializable(package="recsys")
class TextClassifier(SparseRowUpdates, keras.Model):
    """Classifies fixed-length token sequences through a word embedding.

    The embedding table (`input_dim` rows of `embedding_dim`; row `i` is
    token id `i`, row 0 padding) feeds one of four architectures:
    `"flatten"` (Flatten + Dense, the order-sensitive baseline), `"lstm"`
    (LSTM over the non-padding tokens), `"conv1d"` (Conv1D + global max
    pooling) and `"mean_pool"` (the masked mean of the token vectors,
    fastText-like and the fastest). Two classes give one sigmoid output;
    more give a softmax. Pretrained vectors go in with
    `set_embeddings(matrix)`; `trainable_embeddings=False` freezes them.

    Args:
        input_dim: int. Rows of the embedding table.
        sequence_length: int. Tokens per input.
        embedding_dim: int. Size of the token vectors. Defaults to `64`.
        architecture: str. One of `SUPPORTED_ARCHITECTURES`. Defaults to
            `"mean_pool"`.
        num_classes: int. Defaults to `2`.
        trainable_embeddings: bool. Defaults to `True`.
        lstm_units: int. Defaults to `32`.
        conv_filters: int. Defaults to `128`.
        kernel_size: int. Defaults to `5`.
        dropout: float. Dropout before the output layer. Defaults to `0.0`.
        input_name: str or None. Key of the token ids when the input is a
            dict. Defaults to `None` (the input is the id tensor).

    Input shape:
        `(batch, sequence_length)` integer token ids (or a dict holding them).

    Output shape:
        `(batch, 1)` probabilities for two classes, else
        `(batch, num_classes)`.

    Example:

    ```python
    model = TextClassifier(input_dim=20_002, sequence_length=40,
                           architecture="conv1d")
    model.compile(optimizer="adam", loss=model.default_loss())
    model.fit(token_ids, labels, epochs=3)
    ```
    """

    def __init__(
        self,
        input_dim: int,
        sequence_length: int,
        embedding_dim: int = 64,
        architecture: str = "mean_pool",
        num_classes: int = 2,
        trainable_embeddings: bool = True,
        lstm_units: int = 32,
        conv_filters: int = 128,
        kernel_size: int = 5,
        dropout: float = 0.0,
        input_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.architecture = architecture
        self.num_classes = num_classes
        self.trainable_embeddings = trainable_embeddings
        self.lstm_units = lstm_units
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.input_name = input_name
        if architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"`architecture` must be one of {SUPPORTED_ARCHITECTURES}. "
                f"Received: architecture={architecture!r}"
            )
        for name in ("input_dim", "sequence_length", "embedding_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must be a positive integer. "
                    f"Received: {name}={value!r}"
                )
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                "`num_classes` must be an integer >= 2. "
                f"Received: num_classes={num_classes!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"`dropout` must be in [0, 1). Received: dropout={dropout}"
            )
        if architecture == "conv1d" and kernel_size > sequence_length:
            raise ValueError(
                f"`kernel_size` ({kernel_size}) must not exceed "
                f"`sequence_length` ({sequence_length})."
            )
        self.embedding = PooledEmbedding(
            input_dim,
            embedding_dim,
            trainable=trainable_embeddings,
            name="token_embedding",
        )
        self.encoder = {
            "mean_pool": lambda: None,
            "flatten": lambda: keras.layers.Flatten(),
            "lstm": lambda: keras.layers.LSTM(lstm_units),
            "conv1d": lambda: keras.layers.Conv1D(
                conv_filters, kernel_size, activation="relu"
            ),
        }[architecture]()
        self.dropout_layer = keras.layers.Dropout(dropout)
        units = 1 if num_classes == 2 else num_classes
        activation = "sigmoid" if num_classes == 2 else "softmax"
        self.head = keras.layers.Dense(units, activation=activation)
        self.build((None, sequence_length))

    def build(self, input_shape: Any = None) -> None:
        self.embedding.build((None,))
        width = self.embedding_dim
        if self.architecture == "flatten":
            width = self.embedding_dim * self.sequence_length
        elif self.architecture == "lstm":
            self.encoder.build((None, self.sequence_length, self.embedding_dim))
            width = self.lstm_units
        elif self.architecture == "conv1d":
            self.encoder.build((None, self.sequence_length, self.embedding_dim))
            width = self.conv_filters
        self.head.build((None, width))
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> Any:
        """Class probabilities for a batch of token ids."""
        ids = inputs[self.input_name] if isinstance(inputs, dict) else inputs
        ids = ops.cast(ids, "int32")
        if self.architecture == "mean_pool":
            x = self.embedding(ids)  # masked mean over the tokens
        else:
            # Per-token vectors: look each position up on its own.
            x = self.embedding.lookup(ids)  # (batch, length, dim)
            if self.architecture == "lstm":
                x = self.encoder(x, mask=ops.not_equal(ids, 0))
            elif self.architecture == "conv1d":
                x = ops.max(self.encoder(x), axis=1)
            else:
                x = self.encoder(x)
        return self.head(self.dropout_layer(x, training=training))

    def set_embeddings(self, matrix: np.ndarray) -> None:
        """Loads pretrained vectors (e.g. `features.embedding_matrix`)."""
        expected = (self.input_dim, self.embedding_dim)
        if tuple(matrix.shape) != expected:
            raise ValueError(
                f"The embedding matrix must have shape {expected}. "
                f"Received: {tuple(matrix.shape)}"
            )
        self.embedding.embeddings.assign(matrix)

    def default_loss(self) -> keras.losses.Loss:
        """Binary or sparse categorical cross-entropy, as the head needs."""
        if self.num_classes == 2:
            return keras.losses.BinaryCrossentropy()
        return keras.losses.SparseCategoricalCrossentropy()

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "architecture": self.architecture,
                "num_classes": self.num_classes,
                "trainable_embeddings": self.trainable_embeddings,
                "lstm_units": self.lstm_units,
                "conv_filters": self.conv_filters,
                "kernel_size": self.kernel_size,
                "dropout": self.dropout,
                "input_name": self.input_name,
            }
        )
        return config
