"""Example configs shipped with the package.

`recsys train movielens_two_tower.toml` finds them by name.
"""
