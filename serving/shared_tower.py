"""`SharedTower`: one `NumpyTower` in memory shared by forked workers.

The query tower's `SharedModel` (`recsys.serving.shared_model`): with
several workers (`recsys serve --workers N`) one helper process loads the
Keras tower and writes its numpy twin where every worker reads it, so no
worker imports Keras for it. The supervisor `join`s that helper before it
forks the workers: a tower that does not load, or a helper that dies
loading it, refuses the bundle.
"""

from collections.abc import Callable
from typing import Any

from recsys.serving.fast_tower import NumpyTower
from recsys.serving.shared_model import FAILED
from recsys.serving.shared_model import PENDING
from recsys.serving.shared_model import READY
from recsys.serving.shared_model import UNSUPPORTED
from recsys.serving.shared_model import SharedModel
from recsys.serving.shared_model import capacity_for

__all__ = ["FAILED", "PENDING", "READY", "UNSUPPORTED", "SharedTower"]


class SharedTower(SharedModel):
    """A shared memory region that one process fills with a `NumpyTower`.

    Args:
        capacity: int. Bytes for the arrays (at least the tower's weights).

    Example:

    ```python
    shared = SharedTower.for_bundle(service.bundle)
    shared.fill_in_child(service.convert_tower)  # before forking workers
    shared.join()  # BundleError: the tower does not load
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

    def fill_in_child(
        self,
        convert: Callable[[], NumpyTower | None],
        what: str = "query tower",
    ) -> int:
        """Forks a process that writes `convert()` here (`join` it).

        Args:
            convert: callable. Loads the Keras tower, checks it, and
                returns its `NumpyTower`, or None to leave the tower to
                each worker's Keras (`RetrievalService.convert_tower`).
            what: str. The tower, for messages.

        Returns:
            int. The child's pid (`join` reaps it).
        """
        return self.fork_writer(convert, what)
