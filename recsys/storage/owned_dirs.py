"""Directories recsys created, told apart from a user's by a marker file.

recsys deletes directories of its own: a finished job's checkpoints, the
temporary directory of a bundle write, the previous bundle a write replaced.
A path in a config or on the command line can name a directory of the
user's just as well, so nothing is deleted on the strength of its path or
its name alone. Every directory recsys creates for itself gets a marker
file, `.recsys-owner`, holding JSON such as:

```
{"created_by": "recsys", "kind": "job", "pid": 4242, "created_at": "..."}
```

and code that removes a directory first checks that the marker is there.
A directory without it is refused with a message that names it.
"""

import datetime
import json
import os
import shutil
import tempfile

MARKER = ".recsys-owner"
CREATED_BY = "recsys"


class NotOwnedError(ValueError):
    """A directory recsys would write into or delete is not its own."""


def _umask():
    # `os.umask` can only be read by setting it; /proc avoids the window in
    # which another thread would create files under a zero umask.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def directory_mode():
    """The mode `os.mkdir` gives a new directory under the current umask."""
    return 0o777 & ~_umask()


def file_mode():
    """The mode `open(path, "w")` gives a new file under the current umask."""
    return 0o666 & ~_umask()


def write_marker(directory, kind, **fields):
    """Marks `directory` as created by recsys.

    Args:
        directory: str. An existing directory recsys created.
        kind: str. What it is for (`"job"`, `"bundle-tmp"`, ...).
        **fields: more JSON-able facts for whoever finds it later.
    """
    marker = {
        "created_by": CREATED_BY,
        "kind": kind,
        "pid": os.getpid(),
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        **fields,
    }
    path = os.path.join(directory, MARKER)
    with open(path, "w") as f:
        json.dump(marker, f)
        f.flush()
        os.fsync(f.fileno())


def read_marker(directory):
    """The marker of a directory recsys created, or `None`.

    Args:
        directory: str. Any path.

    Returns:
        dict or None: the marker's JSON when `directory` is a directory
        (not a link to one) holding a readable recsys marker.
    """
    if os.path.islink(directory) or not os.path.isdir(directory):
        return None
    try:
        with open(os.path.join(directory, MARKER)) as f:
            marker = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(marker, dict) or marker.get("created_by") != CREATED_BY:
        return None
    return marker


def make_owned_tempdir(parent, prefix, kind, **fields):
    """Creates a marked temporary directory in `parent`.

    `tempfile.mkdtemp` makes the directory private (0700); it is opened up
    to what the umask allows, so that what is later moved out of it (a
    bundle a service reads as another user) is readable as any new
    directory would be.

    Args:
        parent: str. Existing directory to create it in.
        prefix: str. Name prefix, e.g. `".bundle-tmp-"`.
        kind: str. Written to the marker.
        **fields: more marker fields.

    Returns:
        str. The new directory's absolute path.
    """
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        os.chmod(path, directory_mode())
        write_marker(path, kind, **fields)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return os.path.abspath(path)


def remove_owned(directory):
    """Deletes `directory` if recsys created it; anything else stays.

    Args:
        directory: str. A directory made by `make_owned_tempdir`.

    Returns:
        bool. Whether it was removed (`False` when missing or unmarked).
    """
    if read_marker(directory) is None:
        return False
    shutil.rmtree(directory, ignore_errors=True)
    return not os.path.exists(directory)
