"""Where bundles may be loaded from: pointer files and the bundle root.

`recsys serve` takes a bundle directory or a pointer file (a small file
whose first line names a bundle directory, relative to the file), and
`/admin/reload` takes a path from the request. A request's path is trusted
only under the bundle root, after resolving symlinks and `..`; the
refusal of any other path is the same whether or not anything exists
there.
"""

import os
import stat

# A pointer file holds one path: anything longer is not one.
MAX_POINTER_BYTES = 4096


class OutsideRoot(ValueError):
    """A path that does not resolve to a place under the bundle root."""


def read_pointer(path):
    """The first line of the pointer file `path`, read without blocking.

    Only a regular file is read, and only its first `MAX_POINTER_BYTES`: a
    FIFO, a device (`/dev/zero`) or a huge file can neither hang nor
    exhaust the server.

    Raises:
        ValueError: `path` is not a regular file.
        OSError: it cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(
                f"{path} is not a regular file, so it is not a pointer file."
            )
        data = os.read(fd, MAX_POINTER_BYTES)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").partition("\n")[0].strip()


def _pointer_target(path):
    """The path the pointer file `path` names (relative to the file)."""
    target = read_pointer(path)
    if not target:
        raise ValueError(f"Pointer file {path} is empty.")
    return os.path.join(os.path.dirname(os.path.abspath(path)), target)


def _bundle_named(path, target, quoted=True):
    """`target`, if it is a bundle directory (`path` is the pointer).

    `quoted`: name the target in the error. Not in a reply to a reload
    request: the first line of any file under the root (a `.env` of
    secrets) would go back to the client.
    """
    if not os.path.isfile(os.path.join(target, "manifest.json")):
        named = f"names {target!r}, which" if quoted else "names a path that"
        raise ValueError(
            f"{path} is a file, so it is read as a pointer file; its first "
            f"line {named} is not a recsys bundle. Fix: pass a bundle "
            "directory, or a file holding a bundle's path."
        )
    return target


def resolve_bundle_path(path):
    """A bundle directory, or the directory named in a pointer file."""
    if os.path.isdir(path) or not os.path.lexists(path):
        return path
    return _bundle_named(path, _pointer_target(path))


def default_bundle_root(path):
    """The directory holding the bundle or pointer file `path`."""
    return os.path.dirname(os.path.abspath(os.path.normpath(path)))


def _under(root, path):
    """`path` with symlinks and `..` resolved, if it lies under `root`."""
    try:
        real = os.path.realpath(os.path.join(root, path))
        inside = os.path.commonpath([root, real]) == root
    except (OSError, ValueError):  # NUL bytes, loops, overlong names
        inside = False
    if not inside:
        raise OutsideRoot(
            "Reload paths must lie under the bundle root (RECSYS_BUNDLE_ROOT)."
        )
    return real


def resolve_under_root(path, root):
    """The bundle directory a reload request's `path` names, under `root`.

    Args:
        path: str. A bundle directory or pointer file; a relative path is
            taken from `root`.
        root: str. The bundle root, already a `realpath`.

    Returns:
        The bundle directory (a `realpath` under `root`).

    Raises:
        OutsideRoot: `path`, or the directory its pointer file names,
            resolves outside `root`. The message is the same for every
            such path, so it tells nothing about what exists there.
        ValueError, OSError: a pointer file under `root` that cannot be
            read or names no bundle (these may name the file).
    """
    real = _under(root, path)
    if os.path.isdir(real) or not os.path.lexists(real):
        return real
    # The target is checked against the root before anything looks at it:
    # "not a bundle" for a path outside would say that it does not exist.
    return _bundle_named(
        real, _under(root, _pointer_target(real)), quoted=False
    )


def bundle_fingerprint(path):
    """What changes when a new bundle lands at `path` (or its pointer).

    Returns:
        `(bundle directory, (relative path, size, mtime in ns) of each of
        its files)`, or None when `path` names no readable bundle now.
        Every file counts, not the manifest alone: a bundle copied into
        place file by file (rsync) has its manifest before the rest, and
        was refused then and never tried again.
    """
    return watched_bundle(path)[0]


def watched_bundle(path):
    """`(bundle_fingerprint(path), None)`, or `(None, why)` when `path`
    names no readable bundle now: why, in a sentence."""
    try:
        target = resolve_bundle_path(path)
        os.stat(os.path.join(target, "manifest.json"))
        files = []
        for root, dirs, names in os.walk(target):
            dirs.sort()
            for name in sorted(names):
                stat = os.stat(os.path.join(root, name), follow_symlinks=False)
                where = os.path.relpath(os.path.join(root, name), target)
                files.append((where, stat.st_size, stat.st_mtime_ns))
    except (OSError, ValueError) as error:
        return None, str(error)
    return (target, tuple(files)), None


def recover_watched_bundle(path):
    """Finishes a bundle write cut short between the two renames of its
    swap, where `path` (or its pointer's target) is missing for that
    reason: what loading the path would do, for a watch that only polls
    it (a server kept serving the old bundle until a SIGHUP).

    Returns:
        bool. Whether a bundle is at the path now.
    """
    from recsys.storage.atomic_write import recover_interrupted_write

    try:
        target = path
        if os.path.isfile(path):  # a pointer file, to a path missing now
            target = _pointer_target(path)
        if os.path.lexists(target):
            return False  # not a swap's gap: another reason
        recover_interrupted_write(target)
        return os.path.isdir(target)
    except (OSError, ValueError):
        return False
