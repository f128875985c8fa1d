"""`SharedTower`: one `NumpyTower` in memory shared by forked workers.

The query tower's `SharedModel` (`recsys.serving.shared_model`): with
several workers (`recsys serve --workers N`) one helper process loads the
Keras tower and writes its numpy twin where every worker reads it, so no
worker imports Keras for it.
"""

from typing import Any

from recsys.serving.fast_tower import NumpyTower
from recsys.serving.shared_model import PENDING
from recsys.serving.shared_model import READY
from recsys.serving.shared_model import UNSUPPORTED
from recsys.serving.shared_model import SharedModel
from recsys.serving.shared_model import capacity_for

__all__ = ["PENDING", "READY", "UNSUPPORTED", "SharedTower"]


class SharedTower(SharedModel):
    """A shared memory region that one process fills with a `NumpyTower`.

    Args:
        capacity: int. Bytes for the arrays (at least the tower's weights).

    Example:

    ```python
    shared = SharedTower.for_bundle(bundle)
    shared.fill_in_child(bundle)  # before forking the workers
    fast = shared.wait()  # in a worker: the NumpyTower, or None
    ```
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(NumpyTower, capacity)

    @classmethod
    def for_bundle(cls, bundle: Any) -> "SharedTower | None":
        """A region sized for `bundle`'s query tower, or None without one."""
        capacity = capacity_for(getattr(bundle, "_query_tower_bytes", None))
        return None if capacity is None else cls(capacity)

    def fill_in_child(self, bundle: Any) -> int:
        """Forks a process that converts `bundle`'s query tower here.

        Returns:
            int. The child's pid (the caller reaps it).
        """
        return self.fork_writer(
            lambda: NumpyTower.from_keras(bundle.query_tower), "query tower"
        )
