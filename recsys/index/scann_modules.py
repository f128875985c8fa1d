"""ScaNN's Python modules, imported without TensorFlow.

`import scann` runs `scann/__init__.py`, which imports TensorFlow for
ScaNN's TF ops whenever TensorFlow is installed (5 of the 5.5 seconds it
takes). Nothing here uses those ops: the searcher is the pybind module
(`scann.scann_ops.py.scann_ops_pybind`, a C++ extension that links no
TensorFlow library) and its protos. So `scann` is registered as a package
whose `__init__.py` runs on first use of a name it defines (`ScannBuilder`,
`scann_ops`, `scann_ops_pybind`, ...), and the submodules are imported
under it by their real names. A user's own `import scann` then gets that
same package, and `scann.ScannBuilder` (or any name of the real package)
works as usual, loading TensorFlow at that moment.

ScaNN ships Linux wheels only (`manylinux_2_27`, x86-64 with AVX and FMA,
or aarch64). Where it is not installed or its extension does not load,
`ScannUnavailable` is raised, and `recsys.index` falls back to exact
search with a one-line notice.
"""

import importlib
import importlib.util
import logging
import sys
import threading
from types import ModuleType

logger = logging.getLogger(__name__)

PYBIND = "scann_ops.py.scann_ops_pybind"
# Guards the package's registration and its deferred `__init__.py`.
_LOCK = threading.RLock()
_noticed = False


class ScannUnavailable(ImportError):
    """ScaNN is not installed for this platform, or does not load."""


def _deferred_package() -> ModuleType:
    """The `scann` package, its `__init__.py` deferred to first use."""
    spec = importlib.util.find_spec("scann")
    if spec is None or spec.loader is None or spec.origin is None:
        raise ModuleNotFoundError("No module named 'scann'")
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    done = False

    def __getattr__(name: str) -> object:
        # Called only for names the package does not hold yet.
        nonlocal done
        if done or name.startswith("__"):
            raise AttributeError(f"module 'scann' has no attribute {name!r}")
        with _LOCK:
            if not done:
                done = True
                loader.exec_module(package)
                # Without TensorFlow, `__init__.py` binds no `scann_ops`:
                # then it is the subpackage, as after a plain import.
                package.__dict__.setdefault(
                    "scann_ops", sys.modules["scann.scann_ops"]
                )
        return getattr(package, name)

    package.__dict__["__getattr__"] = __getattr__
    package.__dict__["_recsys_deferred"] = lambda: not done
    return package


def scann_module(name: str) -> ModuleType:
    """Imports `scann.<name>` without running `scann/__init__.py`.

    Args:
        name: str. The submodule's dotted name under `scann`, e.g.
            `"proto.scann_pb2"`.

    Returns:
        The module, the same object `import scann.<name>` gives.

    Raises:
        ScannUnavailable: if ScaNN is not installed or does not load.

    Example:

    ```python
    scann_pb2 = scann_module("proto.scann_pb2")
    ```
    """
    with _LOCK:
        added = None
        try:
            if "scann" not in sys.modules:
                added = sys.modules["scann"] = _deferred_package()
            module = importlib.import_module(f"scann.{name}")
        except ImportError as error:
            if added is not None and sys.modules.get("scann") is added:
                del sys.modules["scann"]
            raise ScannUnavailable(
                f"ScaNN is not available on this platform ({error})."
            ) from error
        package = sys.modules["scann"]
        deferred = package.__dict__.get("_recsys_deferred")
        if deferred is not None and deferred():
            # Importing the subpackage bound `scann.scann_ops` to it; the
            # real `__init__.py` binds ScaNN's TF ops there, so leave the
            # name to the deferred `__init__.py`.
            package.__dict__.pop("scann_ops", None)
        return module


def scann_ops() -> ModuleType:
    """ScaNN's pybind module (`scann_ops_pybind`), without TensorFlow.

    Raises:
        ScannUnavailable: if ScaNN is not installed or does not load.
    """
    return scann_module(PYBIND)


def scann_available() -> bool:
    """Whether ScaNN loads here; says why once per process if it does not.

    Returns:
        bool. False where `scann_ops()` raises `ScannUnavailable`; the
        first such call logs a one-line notice that exact (brute-force)
        search is used instead.
    """
    global _noticed
    try:
        scann_ops()
    except ScannUnavailable as error:
        if not _noticed:
            _noticed = True
            logger.warning(
                "%s Using exact (brute-force) search instead of ScaNN.",
                error.args[0],
            )
        return False
    return True
