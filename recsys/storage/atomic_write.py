"""Crash-safe directory writes: build beside, fsync, rename, recover.

A bundle is written into a marked temporary directory beside its
destination, flushed to disk, and renamed into place. Replacing an existing
bundle takes two renames (the old one aside, the new one in), and a kill
between them would leave nothing at the destination, so the swap is
journaled in the marker files of its temporary directories:

```
.bundle-tmp-XXXX/.recsys-owner   {"kind": "bundle-tmp", "target": "run"}
.bundle-tmp-XXXX/bundle/         the new bundle, complete and fsynced
.bundle-old-YYYY/.recsys-owner   {"kind": "bundle-old", "target": "run",
                                  "new": ".bundle-tmp-XXXX"}
.bundle-old-YYYY/bundle/         the previous bundle, once moved aside
```

`.bundle-old-*` is only created once the new bundle is whole on disk, so
whoever finds the destination missing beside it (the next write, or the
next `load_bundle` of that path) completes the swap forward: the run that
wrote the new bundle had finished, and its result is what was asked for.
Only if the new bundle is gone is the old one put back. Either way the
leftovers are removed and a warning says what was done. The recovery runs
under the output's lock (`recsys.storage.output_lock`), so a live writer's
temporary directory is never touched.
"""

import contextlib
import logging
import os
import re
import secrets
import signal

from recsys.storage.files import BundleError
from recsys.storage.output_lock import output_lock
from recsys.storage.output_lock import try_output_lock
from recsys.storage.owned_dirs import make_owned_tempdir
from recsys.storage.owned_dirs import read_marker
from recsys.storage.owned_dirs import remove_owned

logger = logging.getLogger(__name__)

# `recsys.bundles.two_tower.MANIFEST`, restated: that module imports this one.
MANIFEST = "manifest.json"
TMP_PREFIX = ".bundle-tmp-"
OLD_PREFIX = ".bundle-old-"
CONTENT = "bundle"


# -- fsync -------------------------------------------------------------------


def fsync_directory(path):
    """Flushes a directory's entries (new names, renames) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        # Some filesystems cannot fsync a directory; the rename is still
        # atomic there, only its durability is up to the filesystem.
        pass
    finally:
        os.close(fd)


def fsync_file(path):
    """Flushes a file's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(directory):
    """Flushes every file and directory under `directory` to disk."""
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                fsync_file(path)
        fsync_directory(root)


def new_temp_file(path):
    """Creates an empty temporary file beside `path`, for `replace_file`.

    Created exclusively (`O_EXCL`), so removing it after a failure removes
    nothing of anyone else's, and with the umask's mode: `mkstemp`'s 0600
    would hide the output from a reader running as another user.

    Args:
        path: str. The file that the temporary file will replace.

    Returns:
        str. The temporary file's path (`.<name>.<random>.tmp`, as
        `_temp_files` matches it).
    """
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def replace_file(tmp, path):
    """Moves the finished file `tmp` to `path`, durably.

    Args:
        tmp: str. A complete file in the directory of `path`.
        path: str. The destination (replaced if it exists).
    """
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_directory(os.path.dirname(os.path.abspath(path)))


def write_text_atomically(path, text):
    """Writes `text` to the file `path`: all of it, or nothing.

    The text goes to a new temporary file beside `path` (`new_temp_file`:
    exclusive, the umask's mode), is flushed to disk and renamed over
    `path`; a crash leaves the old file or the new one, never a mix.

    Args:
        path: str. The file to write (replaced if it exists).
        text: str. Its whole content.

    Example:

    ```python
    write_text_atomically("out/preprocessor.json", json.dumps(config))
    ```
    """
    write_bytes_atomically(path, text.encode("utf-8"))


def write_bytes_atomically(path, data):
    """Writes `data` to the file `path`: all of it, or nothing (as
    `write_text_atomically`).

    Args:
        path: str. The file to write (replaced if it exists).
        data: bytes. Its whole content.
    """
    tmp = new_temp_file(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _temp_files(path):
    """The files `new_temp_file(path)` names, present beside `path`."""
    directory, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{8}}\.tmp")
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    return [
        os.path.join(directory, entry)
        for entry in entries
        if pattern.fullmatch(entry)
        and os.path.isfile(os.path.join(directory, entry))
    ]


def write_tables_atomically(path, tables, open_writer, *, empty_message=None):
    """Writes Arrow tables, one after another, to the file `path`: all of
    them or nothing.

    They go to a new temporary file beside `path` (the umask's mode) that is
    flushed and renamed over `path` once the last is written; on any error
    the temporary file is removed and `path` is left as it was. The write
    holds the output's lock (`recsys.storage.output_lock`), so the
    temporary files of `path` found beside it then were left by writes a
    kill cut short: they are removed, with a warning.

    Args:
        path: str. The file to write (replaced if it exists).
        tables: iterable of `pyarrow.Table` with one schema (a generator
            streams them).
        open_writer: callable `(tmp_path, schema) -> writer` with
            `write_table` and `close`: `pyarrow.parquet.ParquetWriter` or
            `pyarrow.csv.CSVWriter`.
        empty_message: str. The `ValueError` raised when `tables` is
            empty (default: one naming `path`).

    Returns:
        int. The number of rows written.

    Raises:
        OutputLockedError: if another process is writing `path`.

    Example:

    ```python
    write_tables_atomically("recs.parquet", chunks, pq.ParquetWriter)
    ```
    """
    with output_lock(path, f"writing {os.path.basename(path)}"):
        # A `kill -9` leaves its temporary file (GBs of a batch job's
        # rows), and every writer holds the lock: those found now are
        # the dead's.
        for left in _temp_files(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(left)
                logger.warning(
                    "Removed %s, left by an interrupted write of %s.",
                    left,
                    os.path.abspath(path),
                )
        tmp = new_temp_file(path)
        writer, rows = None, 0
        try:
            for table in tables:
                if writer is None:
                    writer = open_writer(tmp, table.schema)
                writer.write_table(table)
                rows += table.num_rows
            if writer is None:
                raise ValueError(
                    empty_message or f"No rows to write to {path}."
                )
            writer.close()
            writer = None
            replace_file(tmp, path)
        finally:
            if writer is not None:
                writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)  # created by `new_temp_file`: ours
    return rows


# -- destination checks ------------------------------------------------------


def file_above(path):
    """The nearest existing path above `path` when it is a file (so that
    nothing can be written at `path`), else None.

    Args:
        path: str. A path to write, existing or not.

    Returns:
        str or None.
    """
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return None if os.path.isdir(parent) else parent


def check_output_path(path):
    """Refuses destinations no bundle can be written to, before any work.

    Args:
        path: str. The output directory.

    Returns:
        str. Its absolute path.

    Raises:
        BundleError: for the filesystem root, which has no parent to hold
            the temporary directory and lock file a write needs, a path
            under a file, one that starts with a `~` no shell expanded, a
            symbolic link, or a path inside a bundle.
    """
    first = os.fspath(path).split(os.sep)[0]
    if first.startswith("~") and not os.path.exists(first):
        # `--output '~'` made a directory named `~` in the working
        # directory, which `rm -rf ~` would "clean up" with the home.
        raise BundleError(
            f"Output {os.fspath(path)!r} starts with {first!r}, which no "
            "shell expanded (a quoted path): recsys would make a directory "
            f"of that name here. Fix: write the path unquoted, or as "
            f"{os.path.expanduser(first)!r}."
        )
    path = os.path.abspath(path)
    if os.path.dirname(path) == path:
        raise BundleError(
            f"Output {path} is the filesystem root: the output needs a "
            "directory of its own beside its temporary directory and lock "
            "file. Fix: choose a new directory, e.g. --output artifacts/run."
        )
    # Under a file, the lock and the directories would fail with a bare
    # "File exists".
    parent = file_above(path)
    if parent:
        raise BundleError(
            f"Output {path} cannot be written: {parent} is a file, not a "
            "directory. Fix: choose a path whose folders are directories, "
            "e.g. --output artifacts/run."
        )
    if os.path.islink(path):
        # The write renames a new directory into place: a link `current ->
        # v1` was replaced by a directory (v1 kept the old bundle), and a
        # link to an empty directory failed once trained ("Not a
        # directory").
        raise BundleError(
            f"Output {path} is a symbolic link (to {os.readlink(path)}): "
            "the write would replace the link, not fill what it points to. "
            f"Fix: give its target, {os.path.realpath(path)}, or another "
            "path (and point the link there afterwards)."
        )
    host = _bundle_above(path)
    if host:
        raise BundleError(
            f"Output {path} is inside the bundle {host}, which then would "
            "no longer load (a bundle holds only the files its manifest "
            "lists). Fix: choose a path outside it, e.g. beside it."
        )
    return path


def _bundle_above(path):
    """The nearest directory above `path` that is a bundle, or None."""
    above = os.path.dirname(path)
    while os.path.dirname(above) != above:
        if os.path.isfile(os.path.join(above, MANIFEST)) and _is_bundle(above):
            return above
        above = os.path.dirname(above)
    return None


def _is_bundle(path):
    """Whether `path` is a recsys bundle and nothing else: its manifest
    lists (with their checksums) every file in it. Replacing a bundle
    removes the directory, so a `manifest.json` alone (a web app's, a
    user's notes beside an old bundle) must not make it one."""
    return _unlisted(path) == []


def _manifest(path):
    """The JSON object in `path`'s manifest, or {} where none is read."""
    import json

    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as file:
            manifest = json.load(file)
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _unlisted(path):
    """The files in `path` its bundle manifest does not list, and its
    folders that hold no listed file (`"notes/"`: an empty folder, a link
    to a folder), or `[]` for a bundle and nothing else, or None where no
    bundle manifest is there."""
    manifest = _manifest(path)
    listed = manifest.get("files")
    if not isinstance(listed, dict) or "kind" not in manifest:
        return None
    folders = {
        "/".join(parts[:end])
        for parts in (str(entry).split("/") for entry in listed)
        for end in range(1, len(parts))
    }
    unlisted = []
    for root, subfolders, files in os.walk(path):
        relative = os.path.relpath(root, path)
        for name in list(subfolders):
            entry = name if relative == "." else f"{relative}/{name}"
            entry = entry.replace(os.sep, "/")
            if entry not in folders or os.path.islink(os.path.join(root, name)):
                unlisted.append(f"{entry}/")
                subfolders.remove(name)  # named once, not file by file
        for name in files:
            entry = name if relative == "." else f"{relative}/{name}"
            entry = entry.replace(os.sep, "/")
            if entry != MANIFEST and entry not in listed:
                unlisted.append(entry)
    return sorted(unlisted)


def check_output(path, kind=None):
    """Refuses a destination that holds anything but a recsys bundle.

    Args:
        path: str. The output directory: missing, empty or a bundle.
        kind: str or None. The kind of bundle to be written there: a
            bundle of another kind is refused too (an `-o` mistyped to
            the two-tower bundle a service runs on); None accepts any.

    Returns:
        str. Its absolute path.

    Raises:
        BundleError: if `path` is the root, a file, a non-empty
            directory without a bundle manifest, or a bundle of another
            kind than `kind`.
    """
    path = check_output_path(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise BundleError(
            f"{path} exists and is not a directory. Fix: choose another "
            "--output directory."
        )
    if os.path.isdir(path) and os.listdir(path):
        unlisted = _unlisted(path)
        if unlisted is None:
            raise BundleError(
                f"{path} exists and is not a recsys bundle (a bundle holds "
                "only the files its manifest.json lists); refusing to "
                "overwrite it. Fix: choose another --output directory."
            )
        if unlisted:
            # Replacing the bundle removes its directory, and these too.
            shown = ", ".join(unlisted[:5]) + (
                ", ..." if len(unlisted) > 5 else ""
            )
            raise BundleError(
                f"{path} is a recsys bundle that also holds files its "
                f"manifest.json does not list ({len(unlisted)}: {shown}); "
                "refusing to replace it, which would remove them. Fix: move "
                "them out of the bundle, or choose another --output "
                "directory."
            )
        found = _manifest(path).get("kind")
        if kind is not None and found != kind:
            raise BundleError(
                f"{path} holds a {found} bundle; refusing to replace it with "
                f"a {kind} bundle. Fix: choose another --output directory, "
                "or remove that bundle first if it is no longer needed."
            )
    return path


# -- the write ---------------------------------------------------------------


def write_atomically(path, fill, kind=None):
    """Writes a bundle directory through a temporary directory.

    `fill(tmp)` writes every file into `tmp`; only if it returns is `tmp`
    flushed to disk and renamed to `path`, so a crash (or an exception)
    never leaves a half-written bundle, and an existing bundle at `path`
    stays whole until the new one replaces it. A kill between the two
    renames of a swap is recovered by the next write or load of `path`.

    Args:
        path: str. Destination directory. An existing bundle there is
            replaced; any other existing non-empty directory is refused.
        fill: callable taking the temporary directory's path.
        kind: str or None. The bundle's kind: a bundle of another kind
            at `path` is refused, not replaced.

    Returns:
        The absolute path of the bundle.

    Raises:
        BundleError: if `path` cannot hold a bundle (see `check_output`).
        OutputLockedError: if another process is writing `path`.
    """
    path = check_output_path(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    with output_lock(path):
        recover_interrupted_write(path)
        check_output(path, kind)
        tmp = make_owned_tempdir(parent, TMP_PREFIX, "bundle-tmp", target=name)
        new = os.path.join(tmp, CONTENT)
        try:
            os.mkdir(new)
            fill(new)
            fsync_tree(new)
        except BaseException:
            remove_owned(tmp)
            raise
        with _stops_held(path):
            _swap(path, parent, name, tmp, new)
    return path


@contextlib.contextmanager
def _stops_held(path):
    """SIGTERM and Ctrl-C during the block take effect when it ends: the
    CLI's stop, raised inside a swap, had published the new bundle, said
    it stopped before, and left the old one half removed beside it."""
    held = []
    try:
        # A stop the process ignores (a background job's Ctrl-C) stays
        # ignored: held, it was said as a stop that never came.
        stops = [
            stop
            for stop in (signal.SIGTERM, signal.SIGINT)
            if signal.getsignal(stop) is not signal.SIG_IGN
        ]
        previous = [
            signal.signal(stop, lambda signum, frame: held.append(signum))
            for stop in stops
        ]
    except ValueError:  # not the main thread, where no handler runs
        yield
        return
    try:
        yield
    finally:
        for stop, handler in zip(stops, previous, strict=True):
            signal.signal(stop, signal.SIG_DFL if handler is None else handler)
    if held:
        logger.warning("Stopped after %s was written whole.", path)
        # SIGTERM first: the CLI's exit status says the stronger stop.
        signal.raise_signal(max(held, key=lambda s: s == signal.SIGTERM))


def _swap(path, parent, name, tmp, new):
    """Renames the finished `new` (inside `tmp`) to `path`, an existing
    bundle there first set aside, then removes both temporary
    directories."""
    old = None
    try:
        if _is_bundle(path):
            # The journal entry: on disk before the first rename.
            old = make_owned_tempdir(
                parent,
                OLD_PREFIX,
                "bundle-old",
                target=name,
                new=os.path.basename(tmp),
            )
            fsync_directory(parent)
            os.replace(path, os.path.join(old, CONTENT))
        # Over a missing or empty directory: one atomic rename.
        os.replace(new, path)
        fsync_directory(parent)
    except BaseException:
        aside = old and os.path.join(old, CONTENT)
        if aside and os.path.isdir(aside) and not os.path.lexists(path):
            os.replace(aside, path)  # an exception, not a kill: undo
        raise
    finally:
        for directory in (old, tmp):
            if directory:
                remove_owned(directory)


# -- recovery ----------------------------------------------------------------


def _leftovers(parent, name, prefixes=(TMP_PREFIX, OLD_PREFIX)):
    """Marked temporary directories of writes to `parent/name`."""
    try:
        entries = os.listdir(parent)
    except OSError:
        return []
    found = []
    for entry in sorted(entries):
        if not entry.startswith(prefixes):
            continue
        directory = os.path.join(parent, entry)
        marker = read_marker(directory)
        if marker is not None and marker.get("target") == name:
            found.append((directory, marker))
    return found


def _swap_forward(parent, name, marker):
    """The new bundle of an interrupted swap, if it is still whole."""
    new = marker.get("new")
    if not isinstance(new, str) or os.path.basename(new) != new:
        return None
    container = os.path.join(parent, new)
    own = read_marker(container)
    if own is None or own.get("target") != name:
        return None
    content = os.path.join(container, CONTENT)
    return content if _is_bundle(content) else None


def _restore(path, leftovers):
    """Puts a bundle back at the missing `path`; says which."""
    parent, name = os.path.split(path)
    swaps = [
        (directory, marker)
        for directory, marker in leftovers
        if marker.get("kind") == "bundle-old"
        and os.path.isdir(os.path.join(directory, CONTENT))
    ]
    if not swaps:
        return
    directory, marker = max(swaps, key=lambda s: str(s[1].get("created_at")))
    forward = _swap_forward(parent, name, marker)
    if forward is not None:
        os.replace(forward, path)
        logger.warning(
            "Recovered %s from an interrupted bundle swap: moved the new "
            "bundle (written in full before the swap began) into place.",
            path,
        )
    else:
        os.replace(os.path.join(directory, CONTENT), path)
        logger.warning(
            "Recovered %s from an interrupted bundle swap: the new bundle "
            "was gone, so the previous bundle was put back.",
            path,
        )
    fsync_directory(parent)


def recover_interrupted_write(path):
    """Finishes or undoes a bundle write that a kill cut short.

    If `path` is missing and a swap into it was interrupted, the new
    bundle is moved into place (or, if it is gone, the old one is put
    back); then the marked temporary directories of earlier writes to
    `path` are removed. Nothing happens while another process holds the
    output's lock (a live write), nor when there is nothing to recover.

    Args:
        path: str. A bundle directory.

    Returns:
        list of str. The temporary directories removed.
    """
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    leftovers = _leftovers(parent, name) if name else []
    if not leftovers:
        return []
    with try_output_lock(path) as held:
        if not held:
            swapping = any(m.get("kind") == "bundle-old" for _, m in leftovers)
            if swapping and not os.path.lexists(path):
                logger.warning(
                    "%s is missing after an interrupted bundle write, and "
                    "another process is writing it (or its directory is "
                    "read-only): not recovering it from here.",
                    path,
                )
            return []
        leftovers = _leftovers(parent, name)
        if not os.path.lexists(path):
            _restore(path, leftovers)
        removed = []
        for directory, _ in leftovers:
            if os.path.exists(directory) and remove_owned(directory):
                removed.append(directory)
        if removed:
            logger.warning(
                "Removed %d temporary director%s left by an interrupted "
                "write of %s: %s",
                len(removed),
                "y" if len(removed) == 1 else "ies",
                path,
                ", ".join(removed),
            )
        return removed


@contextlib.contextmanager
def owned_output_dir(path, prefix, kind):
    """A marked temporary directory for a new directory at `path`.

    Yields the directory to fill; when the block returns, its content is
    flushed to disk and renamed to `path` (missing or empty). On an
    exception, or a SIGTERM the caller turned into one, the temporary
    directory is removed; a SIGKILL's leftover is removed by the next
    write to `path`. The output's lock is held throughout.

    Args:
        path: str. The directory to create.
        prefix: str. Name prefix of the temporary directory.
        kind: str. Its marker's kind.

    Yields:
        str. The directory to write into.
    """
    path = check_output_path(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    with output_lock(path, f"writing {name}"):
        for directory, marker in _leftovers(parent, name, (prefix,)):
            if remove_owned(directory):
                logger.warning(
                    "Removed %s, left by an interrupted write of %s (pid %s).",
                    directory,
                    path,
                    marker.get("pid"),
                )
        tmp = make_owned_tempdir(parent, prefix, kind, target=name)
        content = os.path.join(tmp, CONTENT)
        try:
            os.mkdir(content)
            yield content
            fsync_tree(content)
            os.replace(content, path)
            fsync_directory(parent)
        finally:
            remove_owned(tmp)


__all__ = [
    "check_output",
    "check_output_path",
    "fsync_directory",
    "fsync_file",
    "fsync_tree",
    "new_temp_file",
    "owned_output_dir",
    "recover_interrupted_write",
    "replace_file",
    "write_atomically",
]
