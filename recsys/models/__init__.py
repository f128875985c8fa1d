"""Keras models of recsys."""

from recsys.models.tabular_model import TabularModel
from recsys.models.text_classifier import TextClassifier
from recsys.models.text_ensemble import TextEnsemble
from recsys.models.tower import Tower
from recsys.models.two_tower import TwoTower

__all__ = [
    "TabularModel",
    "TextClassifier",
    "TextEnsemble",
    "Tower",
    "TwoTower",
]
