"""Shared fixtures. The Keras backend defaults to JAX, as in the CLI."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
