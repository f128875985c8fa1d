"""Keras models of recsys."""

from recsys.models.tower import Tower
from recsys.models.two_tower import TwoTower

__all__ = ["Tower", "TwoTower"]
