"""`BundleFiles`: a bundle directory read as a closed, checksummed list.

A bundle is data, never code: loading one must not run anything it holds,
follow a link out of it, block on a special file or read without bound.
So every loader reads through this module:

- the directory is opened once (`O_DIRECTORY`) and every file is opened
  relative to that handle with `O_NOFOLLOW | O_NONBLOCK`, so a symlink, a
  FIFO or a device is refused instead of followed or waited on, and a
  directory swapped in while loading is never read (the handle keeps the
  directory that was opened: all-old or refused, never mixed);
- the files a kind may hold are a fixed list (`allowed`); anything else on
  disk, and any symlink or non-regular file, is refused by name;
- the manifest records each file's size and sha256 at write time
  (`file_digests`); a file whose bytes differ is refused, and nothing is
  read beyond the recorded size or a per-suffix cap;
- files are read into memory once and parsed from those bytes (`npy`,
  `json`, `parquet`), so what is checked is what is used. Files whose
  manifest entries have the same size and sha256 (an index's copy of the
  item embeddings) are kept in memory once: the copy is still read and
  checked, chunk by chunk, then its bytes are those already checked.
"""

import hashlib
import io
import json
import math
import os
import stat
from collections.abc import Collection
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

# Largest file read, by suffix (bytes). A bundle's JSON holds vocabularies
# (tens of MB for millions of ids); arrays and models can be large.
GIB = 2**30
MAX_BYTES = {
    ".json": 1 * GIB,
    ".pbtxt": 2**20,
    ".pb": 4 * GIB,
    ".npy": 64 * GIB,
    ".parquet": 16 * GIB,
    ".keras": 16 * GIB,
}
# A manifest holds the config, the metrics and the file list: kilobytes.
# Its size is checked before anything is known about the bundle.
MAX_MANIFEST_BYTES = 16 * 2**20
CHUNK = 2**24
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class BundleError(ValueError):
    """A bundle directory is missing, incomplete, corrupt or incompatible."""


def _kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def max_bytes(name: str) -> int:
    """The size cap of a bundle file, from its suffix (1 MiB if unknown)."""
    return MAX_BYTES.get(os.path.splitext(name)[1], 2**20)


def file_digests(
    directory: str | os.PathLike[str], exclude: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under `directory`, for a manifest.

    Called by the writers after every other file is written.

    Args:
        directory: str. The (temporary) bundle directory.
        exclude: names (relative, `/`-separated) to leave out, such as the
            manifest itself.

    Returns:
        dict: relative path -> `{"bytes": int, "sha256": hex str}`.
    """
    digests = {}
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            if rel in exclude:
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(CHUNK):
                    digest.update(block)
            digests[rel] = {
                "bytes": os.path.getsize(path),
                "sha256": digest.hexdigest(),
            }
    return digests


def load_npy(
    data: bytes | bytearray | memoryview, name: str = "array"
) -> np.ndarray:
    """A `.npy` file's array, parsed from bytes without pickle or a copy.

    Args:
        data: bytes-like. The whole file (a `bytearray` gives a writable
            array).
        name: str. Named in errors.

    Returns:
        numpy array viewing `data`.

    Raises:
        BundleError: if `data` is not a complete `.npy` of plain values.
    """
    stream = io.BytesIO(memoryview(data)[: 65536 + 16])
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(stream)
    except (ValueError, SyntaxError, TypeError) as error:
        raise BundleError(f"{name} is not a valid .npy file: {error}") from None
    if dtype.hasobject or dtype.kind not in "biufU":
        raise BundleError(
            f"{name} holds dtype {dtype}; bundles hold only numbers and "
            "strings (never pickled objects). Fix: retrain the bundle."
        )
    count = math.prod(shape)  # Python ints: no overflow on hostile shapes
    offset = stream.tell()
    if len(data) - offset != count * dtype.itemsize:
        raise BundleError(
            f"{name} is truncated or padded: its header says shape {shape} "
            f"({count * dtype.itemsize} bytes of data), found "
            f"{len(data) - offset} bytes."
        )
    try:
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        return array.reshape(shape, order="F" if fortran else "C")
    except ValueError as error:  # a zero-size dtype, a dimension over 2**63
        raise BundleError(
            f"{name} is not a valid .npy file: its header (shape {shape}, "
            f"dtype {dtype}) cannot be read: {error}. Fix: retrain the bundle."
        ) from None


class BundleFiles:
    """One bundle directory, opened once; reads its listed files safely.

    Opening checks the closed list: every entry on disk (recursively) must
    be a regular file listed in `files` (or a directory holding some), and
    every listed file must be one of `allowed` and exist. `read` then
    returns each file's bytes after checking its type, size and sha256.

    Use `BundleFiles.open(path, manifest_name)`, which reads the manifest,
    then `check_files` with the manifest's `files` entry (relative path ->
    `{"bytes", "sha256"}`) and the kind's allowed and required paths.

    Args:
        path: str. The directory (a symlink to it is followed once, at
            `open`).
        fd: int. The directory's open handle, owned from then on.
        manifest_name: str. The manifest's file name.

    Example:

    ```python
    files, manifest = BundleFiles.open(path, "manifest.json")
    with files:
        files.check_files(manifest["files"], allowed, required)
        embeddings = files.npy("item_embeddings.npy")
    ```
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fd: int,
        manifest_name: str,
    ) -> None:
        self.path = os.fspath(path)
        self._fd = fd
        self._dirs = {"": fd}
        self.manifest_name = manifest_name
        self.files: dict[str, dict[str, Any]] = {}
        # Checked bytes by (size, sha256): files with the same digest are
        # kept once (see the module docstring). Dropped at `close`.
        self._checked: dict[tuple[int, str], bytearray] = {}
        self._verified: set[str] = set()  # names whose bytes were checked

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], manifest_name: str
    ) -> tuple["BundleFiles", dict[str, Any]]:
        """Opens `path` and reads its manifest (`manifest_name`) as JSON.

        Returns:
            `(BundleFiles, manifest dict)`. Call `check_files` next.

        Raises:
            BundleError: if `path` is no directory or the manifest is
                missing, not a regular file or not a JSON object.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise BundleError(
                f"{path} is not a recsys bundle: cannot open it as a "
                f"directory ({error.strerror})."
            ) from None
        bundle = cls(path, fd, manifest_name)
        try:
            data = bundle._read(manifest_name, None, MAX_MANIFEST_BYTES)
            try:
                manifest = json.loads(data)
            except (
                # ValueError: JSONDecodeError, and an integer of more than
                # 4,300 digits (Python's limit)
                ValueError,
                RecursionError,
            ) as error:
                raise BundleError(
                    f"Cannot read {bundle._where(manifest_name)}: {error}"
                ) from None
            if not isinstance(manifest, dict):
                raise BundleError(
                    f"{bundle._where(manifest_name)} does not hold a JSON "
                    "object."
                )
        except BaseException:
            bundle.close()
            raise
        return bundle, manifest

    def check_files(
        self,
        files: Any,
        allowed: Collection[str],
        required: Collection[str],
    ) -> None:
        """Checks the closed list; see the class docstring.

        Args:
            files: dict. The manifest's `files` entry.
            allowed: collection of relative paths this kind may hold.
            required: collection of relative paths it must hold.

        Raises:
            BundleError: naming the first file that breaks the list.
        """
        if not isinstance(files, dict) or not all(
            isinstance(v, dict)
            and isinstance(v.get("bytes"), int)
            and isinstance(v.get("sha256"), str)
            for v in files.values()
        ):
            raise BundleError(
                f"{self._where(self.manifest_name)} has no valid `files` "
                "list (size and sha256 of each file). Fix: retrain the "
                "bundle with this version of recsys."
            )
        for name in sorted(files):
            if name not in allowed or name == self.manifest_name:
                raise BundleError(
                    f"{self._where(name)} is not a file a bundle of this "
                    "kind may hold; refusing to load it."
                )
        for name in sorted(set(required) - {self.manifest_name}):
            if name not in files:
                raise BundleError(
                    f"Bundle {self.path} is incomplete: {name} is missing "
                    "from its manifest."
                )
        self.files = dict(files)
        expected = set(files) | {self.manifest_name}
        found = self._walk("", expected)
        for name in sorted(expected - found):
            raise BundleError(
                f"Bundle {self.path} is incomplete or corrupt: {name} not "
                "found."
            )

    def _walk(self, prefix: str, expected: Collection[str]) -> set[str]:
        """Relative paths of the regular files under `prefix`, checked."""
        fd = self._dir(prefix)
        found = set()
        for entry in sorted(os.listdir(fd)):
            rel = prefix + entry
            try:
                mode = os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue  # Gone since listed: a missing file is named later.
            if stat.S_ISDIR(mode) and any(
                name.startswith(rel + "/") for name in expected
            ):
                found |= self._walk(rel + "/", expected)
            elif stat.S_ISREG(mode) and rel in expected:
                found.add(rel)
            elif stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                raise BundleError(
                    f"{self._where(rel)} is not part of the bundle (not in "
                    "its manifest); refusing to load it. Fix: remove it, or "
                    "retrain the bundle."
                )
            else:
                raise BundleError(
                    f"{self._where(rel)} is {_kind_of(mode)}; a bundle holds "
                    "only regular files. Refusing to load it."
                )
        return found

    def _dir(self, prefix: str) -> int:
        """The handle of the subdirectory `prefix` (`a/b/`), opened once."""
        if prefix not in self._dirs:
            parent, _, name = prefix[:-1].rpartition("/")
            parent_fd = self._dir(parent + "/" if parent else "")
            try:
                self._dirs[prefix] = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            except OSError as error:
                raise BundleError(
                    f"{self._where(prefix[:-1])} is not a directory of the "
                    f"bundle ({error.strerror})."
                ) from None
        return self._dirs[prefix]

    # -- reading -----------------------------------------------------------

    def read(self, name: str) -> bytearray:
        """The bytes of the listed file `name`, checked against its sha256.

        Returns:
            bytearray.

        Raises:
            BundleError: if the file is not listed, not a regular file,
                over its size cap, or its bytes differ from the manifest.
        """
        entry = self.files.get(name)
        if entry is None:
            raise BundleError(
                f"{self._where(name)} is not listed in the bundle's manifest."
            )
        key = (entry["bytes"], entry["sha256"])
        data = self._checked.get(key)
        if data is None:
            data = self._read(name, entry, max_bytes(name))
            self._checked[key] = data
        elif name not in self._verified:
            self._read(name, entry, max_bytes(name), keep=False)
        self._verified.add(name)
        return data

    def prefetch(self, names: Collection[str], threads: int = 2) -> None:
        """Reads and checks the listed files `names` in `threads` threads.

        Reading and hashing release the interpreter lock, so a bundle of
        large arrays loads about `threads` times faster on as many cores.
        Later `read`s of these files return the checked bytes; errors are
        raised as `read` raises them. The threads end before this returns.

        Args:
            names: relative paths; those not listed are left to `read`.
            threads: int. Files read at once. Defaults to `2`.
        """
        todo = []
        for name in set(names) - self._verified:
            entry = self.files.get(name)
            if entry is not None:
                parent = name.rpartition("/")[0]
                self._dir(parent + "/" if parent else "")  # opened here
                todo.append((name, entry))
        # Largest first: the long reads start at once.
        todo.sort(key=lambda item: (-item[1]["bytes"], item[0]))
        with ThreadPoolExecutor(max(1, threads)) as pool:
            futures = []
            keys = set(self._checked)
            for name, entry in todo:
                key = (entry["bytes"], entry["sha256"])
                keep = key not in keys  # a copy is checked, not kept
                keys.add(key)
                read = pool.submit(
                    self._read, name, entry, max_bytes(name), keep
                )
                futures.append((name, key, keep, read))
        for name, key, keep, read in futures:
            data = read.result()
            if keep:
                self._checked[key] = data
            self._verified.add(name)

    def _read(
        self,
        name: str,
        entry: Mapping[str, Any] | None,
        cap: int,
        keep: bool = True,
    ) -> bytearray:
        """Reads and checks one file; with `keep=False` it only checks it
        (one chunk in memory at a time) and returns an empty bytearray."""
        parent, _, base = name.rpartition("/")
        dir_fd = self._dir(parent + "/" if parent else "")
        try:
            fd = os.open(base, _OPEN_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            if entry is None:
                raise BundleError(
                    f"{self.path} is not a recsys bundle: {name} not found."
                ) from None
            raise BundleError(
                f"Bundle {self.path} is incomplete or corrupt: {name} not "
                "found."
            ) from None
        except OSError as error:
            raise BundleError(
                f"{self._where(name)} cannot be opened ({error.strerror}): "
                "a bundle holds only regular files, never symlinks."
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise BundleError(
                    f"{self._where(name)} is {_kind_of(info.st_mode)}; a "
                    "bundle holds only regular files. Refusing to load it."
                )
            size = info.st_size
            if size > cap:
                raise BundleError(
                    f"{self._where(name)} is {size} bytes, over the "
                    f"{cap}-byte limit for such files. Refusing to load it."
                )
            if entry is not None and size != entry["bytes"]:
                raise BundleError(
                    f"{self._where(name)} is {size} bytes but the manifest "
                    f"says {entry['bytes']}: the bundle was changed after it "
                    "was written. Fix: retrain or restore the bundle."
                )
            digest = hashlib.sha256()
            data = bytearray(size if keep else min(size, CHUNK))
            view, done = memoryview(data), 0
            while done < size:
                at = done if keep else 0
                got = os.readv(fd, [view[at : at + CHUNK]])
                if got == 0:
                    break
                if not keep:
                    digest.update(view[:got])
                done += got
        except OSError as error:
            raise BundleError(
                f"Cannot read {self._where(name)}: {error.strerror}"
            ) from None
        finally:
            os.close(fd)
        if done != size:
            raise BundleError(
                f"{self._where(name)} shrank while being read; refusing it."
            )
        if keep:
            digest = hashlib.sha256(data)
        if entry is not None and digest.hexdigest() != entry["sha256"]:
            raise BundleError(
                f"{self._where(name)} does not match the sha256 in the "
                "bundle's manifest: the bundle was changed or corrupted "
                "after it was written. Fix: retrain or restore the bundle."
            )
        return data if keep else bytearray()

    def json(self, name: str) -> Any:
        """The listed JSON file `name`, parsed."""
        try:
            return json.loads(self.read(name))
        except (ValueError, RecursionError) as error:  # as in `open`
            raise BundleError(
                f"Cannot read {self._where(name)}: {error}"
            ) from None

    def npy(self, name: str) -> np.ndarray:
        """The listed `.npy` file `name` as a (writable) array."""
        return load_npy(self.read(name), self._where(name))

    def parquet(self, name: str) -> Any:
        """The listed Parquet file `name` as a pandas DataFrame.

        Raises:
            BundleError: if the file cannot be read, or would read into
                more than `parquet_cap` bytes (`_check_parquet_footer`,
                `_check_decoded_size`).
        """
        import pyarrow
        import pyarrow.parquet

        data = self.read(name)
        where = self._where(name)
        try:
            # From an Arrow buffer on this thread: a Python file object read
            # by Arrow's thread pool sometimes aborted the process at exit
            # ("terminate called without an active exception",
            # apache/arrow#34314), once after a refused bundle. A bundle's
            # tables are a catalog's ids and titles: one thread reads them.
            footer = pyarrow.parquet.ParquetFile(pyarrow.BufferReader(data))
            _check_parquet_footer(footer, len(data), where)
            # Strings are read as dictionaries (each distinct value once),
            # so that what they decode to is counted before it is built.
            strings = _string_leaves(footer.metadata.schema)
            table = pyarrow.parquet.read_table(
                pyarrow.BufferReader(data),
                use_threads=False,
                read_dictionary=strings or None,
            )
            schema = footer.schema_arrow
            _check_decoded_size(table, schema, len(data), where)
            if strings:
                table = table.cast(schema)
            return table.to_pandas(use_threads=False)
        except BundleError:
            raise
        except (
            OSError,
            ValueError,
            pyarrow.ArrowException,
            # Hand-edited pandas metadata in the file's schema (pyarrow
            # reads it as given).
            KeyError,
            TypeError,
            RecursionError,
        ) as error:
            raise BundleError(
                f"Cannot read {self._where(name)}: "
                f"{type(error).__name__} {error}"
            ) from None

    def _where(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        """Closes the directory handles."""
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs = {}
        self._checked = {}

    def __enter__(self) -> "BundleFiles":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# Parquet compresses, and its dictionary and run-length encodings store a
# repeated value once: a 27.6 KB items.parquet of 9,066 copies of one 50 KB
# title read into 1.25 GB. A bundle's table may read into at most this
# many times its file's size plus `PARQUET_SLACK` (`parquet_cap`). Tables
# recsys writes read into 1 to 3 times their size (ids, titles, genres),
# and a million items' ids and titles into about 50 MB, under the slack
# alone; only a value repeated many times (a long category string over a
# few million rows) comes near the multiple.
PARQUET_EXPANSION = 32
PARQUET_SLACK = 256 * 2**20
# Bytes per value of each Parquet physical type, as Arrow holds it read
# (a byte array's offset; its bytes are counted from the dictionary).
_PARQUET_WIDTHS = {
    "BOOLEAN": 1,
    "INT32": 4,
    "INT64": 8,
    "INT96": 12,
    "FLOAT": 4,
    "DOUBLE": 8,
    "BYTE_ARRAY": 4,
}


def parquet_cap(size: int) -> int:
    """The most bytes a bundle's Parquet file of `size` bytes may read
    into (see `PARQUET_EXPANSION`)."""
    return PARQUET_EXPANSION * size + PARQUET_SLACK


def _too_large(where: str, size: int, found: int, what: str) -> BundleError:
    return BundleError(
        f"Cannot read {where}: its {size:,} bytes {what} {found:,} bytes, "
        f"over the {parquet_cap(size):,}-byte limit for a file of its size "
        f"({PARQUET_EXPANSION} times it plus {PARQUET_SLACK // 2**20} MiB; "
        "a table recsys writes reads into about its size). Fix: retrain "
        "the bundle; do not load a file of unknown origin."
    )


def _check_parquet_footer(footer: Any, size: int, where: str) -> None:
    """Raises `BundleError` where the footer of a Parquet file says its
    pages decompress, or its rows decode, to more than `parquet_cap`:
    before anything is read."""
    metadata = footer.metadata
    declared = decoded = 0
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        columns = [group.column(j) for j in range(group.num_columns)]
        declared += max(
            group.total_byte_size,
            sum(column.total_uncompressed_size for column in columns),
        )
        for j, column in enumerate(columns):
            leaf = metadata.schema.column(j)
            width = _PARQUET_WIDTHS.get(leaf.physical_type, leaf.length or 1)
            # A run-length encoded value costs a few bytes for any number
            # of rows: the rows are what Arrow allocates.
            decoded += max(column.num_values, group.num_rows) * width
    if declared > parquet_cap(size):
        raise _too_large(where, size, declared, "decompress to")
    if decoded > parquet_cap(size):
        raise _too_large(where, size, decoded, "hold rows of")


def _string_leaves(schema: Any) -> list[str]:
    """The paths of the text and byte columns of a Parquet schema, nested
    ones too (`tags.list.element`)."""
    return [
        leaf.path
        for leaf in map(schema.column, range(len(schema)))
        if leaf.physical_type == "BYTE_ARRAY"
        and str(leaf.logical_type) in ("None", "String", "Enum", "JSON", "BSON")
    ]


def _decoded_bytes(array: Any) -> int:
    """About the bytes `array` takes once its dictionaries are decoded:
    each row's value, for a dictionary of strings or bytes."""
    import pyarrow
    import pyarrow.compute

    kind = array.type
    if pyarrow.types.is_dictionary(kind):
        try:
            lengths = pyarrow.compute.binary_length(array.dictionary)
        except pyarrow.ArrowNotImplementedError:  # not strings: as read
            return int(array.nbytes)
        taken = pyarrow.compute.sum(lengths.take(array.indices)).as_py()
        return (taken or 0) + 8 * len(array)
    if pyarrow.types.is_struct(kind):
        return 8 * len(array) + sum(
            _decoded_bytes(array.field(i)) for i in range(kind.num_fields)
        )
    if isinstance(array, (pyarrow.ListArray, pyarrow.LargeListArray)) or (
        isinstance(array, pyarrow.FixedSizeListArray)
    ):
        return 8 * len(array) + _decoded_bytes(array.values)
    return int(array.nbytes)


def _check_decoded_size(table: Any, schema: Any, size: int, where: str) -> None:
    """Raises `BundleError` where `table` (read with its strings as
    dictionaries) decodes to more than `parquet_cap`. A column the file
    itself keeps as a dictionary (a pandas category) stays one, and counts
    as read."""
    import pyarrow

    if table.num_columns != len(schema):
        raise BundleError(
            f"Cannot read {where}: its schema names {len(schema)} columns, "
            f"and {table.num_columns} were read. Fix: retrain the bundle."
        )
    total = 0
    for field, column in zip(schema, table.columns, strict=True):
        if pyarrow.types.is_dictionary(field.type):
            total += column.nbytes
        else:
            total += sum(_decoded_bytes(chunk) for chunk in column.chunks)
        if total > parquet_cap(size):
            raise _too_large(where, size, total, "decode to at least")


# Checked copies handed to a library that reads only paths (ScaNN) go to
# RAM when it has room for twice as much: no disk writes on load.
SHARED_MEMORY = "/dev/shm"


def private_dir(prefix: str, size: int = 0) -> str:
    """A new private (0700) temporary directory for `size` bytes of copies.

    In `/dev/shm` (memory) when it exists and has room for twice `size`,
    else in the default temporary directory. The caller deletes it.

    Args:
        prefix: str. The directory name's prefix.
        size: int. Bytes the caller will write into it.

    Returns:
        str. The directory's path.
    """
    import tempfile

    try:
        info = os.statvfs(SHARED_MEMORY)
        if info.f_bavail * info.f_frsize > 2 * size and os.access(
            SHARED_MEMORY, os.W_OK | os.X_OK
        ):
            return tempfile.mkdtemp(prefix=prefix, dir=SHARED_MEMORY)
    except OSError:
        pass
    return tempfile.mkdtemp(prefix=prefix)


def load_keras_bytes(data: bytes | bytearray, name: str) -> Any:
    """A `.keras` model from its bytes, loaded with `safe_mode=True`.

    Keras reads models from a path, so the bytes go to a private temporary
    directory that is created here and deleted once the model is loaded:
    the model is the one whose bytes were checked, never a file reopened
    later.

    Args:
        data: bytes-like. The checked `.keras` file.
        name: str. Named in errors.

    Returns:
        The Keras model.

    Raises:
        BundleError: if Keras cannot load it (or safe mode refuses it).
    """
    import shutil
    import tempfile
    import zipfile

    import keras

    import recsys.models  # noqa: F401  (registers the classes)

    _check_keras_zip(data, name)
    private = tempfile.mkdtemp(prefix="recsys-model-")
    try:
        path = os.path.join(private, "model.keras")
        with open(path, "xb") as f:
            f.write(data)
        return keras.saving.load_model(path, safe_mode=True)
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
        RecursionError,  # a hand-made config nested thousands deep
        MemoryError,  # layers larger than memory (`_check_declared_sizes`)
        RuntimeError,  # the backend's allocation error (XLA's), the same
    ) as error:
        raise BundleError(
            f"Cannot load the model {name}: {error}. A model saved by "
            "another version of recsys may not load in this one. Fix: "
            "retrain the bundle with this version."
        ) from None
    finally:
        shutil.rmtree(private, ignore_errors=True)


# Keras writes a `.keras` zip uncompressed (stored), so its members unpack
# to about the file's size; this much more is allowed for a zip compressed
# by another writer. A zip bomb (0.5 MB that unpacks to 400 MB of config)
# is refused before Keras unpacks it.
UNPACKED_SLACK = 64 * 2**20


def _check_keras_zip(data: bytes | bytearray, name: str) -> None:
    """Raises `BundleError` where a `.keras` zip would harm the process
    Keras unpacks and builds it in: one that unpacks to more than twice
    its size plus `UNPACKED_SLACK` (a zip bomb), or whose config declares
    layers larger than its weights could hold (`_check_declared_sizes`),
    and a file that is no zip at all (Keras' error named the temporary
    file it had been copied to). One that lacks its config is left to
    Keras, whose error names what is missing."""
    import zipfile

    limit = 2 * len(data) + UNPACKED_SLACK
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise BundleError(
            f"Cannot load the model {name}: it is not a .keras file (a zip "
            "archive). Fix: retrain the bundle."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            unpacked = sum(info.file_size for info in infos)
            # A bomb's config is not read: that is what it would unpack.
            config = (
                None
                if unpacked > limit
                else json.loads(archive.read("config.json"))
            )
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, RecursionError):
        return
    if unpacked > limit:
        raise BundleError(
            f"Cannot load the model {name}: its {len(data):,} bytes unpack "
            f"to {unpacked:,} (a .keras file written by Keras unpacks to "
            "about its size). Fix: retrain the bundle; do not serve a file "
            "of unknown origin."
        )
    weights = sum(i.file_size for i in infos if i.filename.endswith(".h5"))
    _check_declared_sizes(config, weights, name)


# The largest number a `.keras` config may give a layer's size (units,
# vocabulary, dimensions): past about 2**31 elements a side, XLA aborts the
# process building the layer ("overflow in static extent product"), which
# no `except` catches. A layer's size is also at most the bytes of weights
# the file holds (`_declared_size_bound`).
MAX_DECLARED_SIZE = 2**30
# And the product of one layer's four largest sizes (the sides of its
# largest weight: an embedding's rows x dimensions, a convolution's
# kernel): 2**48 float32 numbers are 1 PB, short of XLA's overflow.
MAX_DECLARED_PRODUCT = 2**48
# Integers of a layer's config that are not sizes.
_NOT_SIZES = frozenset({"seed", "salt"})


def _check_declared_sizes(config: Any, weights: int, name: str) -> None:
    """Raises `BundleError` where a `.keras` config declares a layer larger
    than its `weights` bytes could hold, before Keras builds (allocates) it.

    A layer of N units or N rows stores at least N weights, so no size of
    a model Keras saved exceeds the bytes of its weights file (nor 2**24,
    a floor for models of few weights): a config edited to declare
    2,000,000,000 x 2,000,000,000 embeddings aborted a serving process.
    """
    bound = min(MAX_DECLARED_SIZE, max(2**24, weights))
    for layer, key, value, product in _declared_sizes(config):
        if value > bound or product > MAX_DECLARED_PRODUCT:
            raise BundleError(
                f"Cannot load the model {name}: its config gives the layer "
                f"{layer!r} {key} = {value:,} (its four largest sizes "
                f"multiply to {product:,}), more than its {weights:,} bytes "
                "of weights could hold. Fix: retrain the bundle; do not "
                "serve a file of unknown origin."
            )


def _declared_sizes(node, depth=0):
    """`(layer, key, value, product)` for each integer of each object's
    config in a Keras config (`{"class_name": ..., "config": {...}}`),
    `product` being the product of that object's four largest."""
    if depth > 200:  # deeper than any model; Keras refuses it anyway
        return
    if isinstance(node, list):
        for item in node:
            yield from _declared_sizes(item, depth + 1)
        return
    if not isinstance(node, dict):
        return
    settings = node.get("config")
    if "class_name" in node and isinstance(settings, dict):
        layer = settings.get("name", node["class_name"])
        for found in _size_groups(settings, depth):
            product = math.prod(sorted((v for _, v in found), reverse=True)[:4])
            for key, value in found:
                yield layer, key, value, product
    for value in node.values():
        yield from _declared_sizes(value, depth + 1)


def _size_groups(settings, depth):
    """Lists of `(key, value)`: the integers of an object's config, then
    those of each plain dict within it, a list of its own each (a
    `Tower`'s or `TabularModel`'s `inputs`: one table's `input_dim` and
    `output_dim`; a forged 2**40 there aborted the process)."""
    own = []
    for key, value in settings.items():
        if key in _NOT_SIZES:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int) and not isinstance(item, bool):
                if item > 1:
                    own.append((key, item))
            elif (
                isinstance(item, dict)
                and "class_name" not in item  # an object: its own layer
                and depth < 200
            ):
                yield from _size_groups(item, depth + 1)
    yield own
