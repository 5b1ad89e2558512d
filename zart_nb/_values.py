"""The value store: large values as files beside the journal, journaled as small references.

A value whose pickle is larger than the threshold (``$ZART_VALUE_THRESHOLD`` bytes, 256 KiB by default)
is written by the process that produced it (the worker for a step's output, the driver for a
workflow's input and output) into ``<journal>.values/`` (a folder of its owner only, files 0600), and
the journal row holds a reference (``REF_MAGIC``, the file's name, size and kind) where the pickle
was. So a large value never crosses the worker's socket, the side log or DuckDB.

A file is pickle protocol 5 with its out-of-band buffers (numpy arrays) written raw, each at a
64-byte aligned offset::

    b"ZARTVAL1" | u32 buffer count | u64 pickle size | u64 size of each buffer | u32 crc32 of the above
    | padding | pickle | padding | buffer 1 | padding | buffer 2 ...

It is fsynced, and its folder entry too, before the reference is returned: the record that points to
it is journaled after that. Loading checks the folder's and the file's owner and mode (as the
journal's), the file's size and the header's checksum (cheap: a content hash of 200 MB costs as much
as reading it), then maps the file copy-on-write (``mmap.ACCESS_COPY``): arrays come back writable,
and writing to them never changes the file. A missing or damaged file is ``ValueLost``; the engine
then runs the step again.
"""
from __future__ import annotations

import mmap
import os
import pickle
import stat
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from . import _ownership
from . import _serialization as ser
from . import _tables as tables
from . import _valueref as valueref
from ._errors import ConfigurationError, ValueLost, ValueStoreError

# The key under which a workflow's own output is listed when it is a table (a step's keys are its name and
# occurrence, ``load#0``; other durable calls' are prefixed by their kind, ``capture:now#0``; both kinds of
# prefix are ``_replay.RESERVED_PREFIXES``, which no step key may start with): its SQL view is
# ``"<execution id>/workflow:output"``, its file ``tables/<execution id>/workflow:output.parquet``. Its
# table input likewise, under ``INPUT_KEY`` (``workflow:input``).
from ._replay import INPUT_KEY as INPUT_KEY
from ._replay import OUTPUT_KEY as OUTPUT_KEY

THRESHOLD_VARIABLE = "ZART_VALUE_THRESHOLD"
# 256 KiB of pickle: above it a value written to a file of its own beats one carried through the socket, the side
# log and DuckDB, as a fan-out and one step after another, first run and re-run (bench/bench_threshold.py: 200
# steps of 256 KB, whole processes, 1.08 -> 0.57 s as a fan-out); at 64 KB the row still wins, one step at a time.
DEFAULT_THRESHOLD = 1 << 18
MIN_AGE = 3600.0  # zart gc keeps an unreferenced file younger than this (it may be being written)
SUFFIX = ".zv"
REF_MAGIC = valueref.REF_MAGIC  # never the start of a pickle (protocol 2+ starts with \x80)
REF_FIRST = REF_MAGIC[0]  # the hot paths test this one byte; load() checks the whole magic
FILE_MAGIC = b"ZARTVAL1"
ALIGN = 64
_COUNTS = struct.Struct("<IQ")
_SIZE = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_FLAGS = os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


class Ref(NamedTuple):
    """What a journal row holds of a stored value: its file (relative to the store), size and kind
    (and for a Parquet file, which has no header of ours, the crc32 of its last bytes)."""

    name: str
    size: int
    kind: str
    check: str = ""


def threshold() -> int:
    """The size in bytes above which a pickle goes to the store (``$ZART_VALUE_THRESHOLD``)."""
    text = os.environ.get(THRESHOLD_VARIABLE, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigurationError(f"${THRESHOLD_VARIABLE} must be a number of bytes (0 or more), got {text!r}")
    return value


def folder_for(journal_path: str | os.PathLike[str]) -> Path:
    """The store of a journal file: ``<journal>.values`` beside it."""
    path = Path(journal_path)
    return path.with_name(path.name + ".values")


def spec(journal_path: str | os.PathLike[str]) -> tuple[str, int]:
    """``(store folder, threshold)``: what a task carries so its worker can store its output."""
    return str(folder_for(journal_path)), threshold()


# --- references -------------------------------------------------------------------------------------


def is_ref(blob: bytes | None) -> bool:
    return blob is not None and blob[:16] == REF_MAGIC


def encode_ref(ref: Ref) -> bytes:
    check = f"\t{ref.check}" if ref.check else ""
    return REF_MAGIC + f"{ref.name}\t{ref.size}\t{ref.kind}{check}".encode()


def decode_ref(blob: bytes) -> Ref:
    try:
        name, size, kind, *check = blob[len(REF_MAGIC):].decode().split("\t", 3)
        return Ref(name, int(size), kind, *check)
    except ValueError as exc:
        raise ValueStoreError(f"a journaled value reference is malformed: {blob[:80]!r}") from exc


def referenced_names(blobs: Iterable[bytes | None]) -> set[str]:
    """The store files these journaled blobs point to."""
    return {decode_ref(blob).name for blob in blobs if blob is not None and is_ref(blob)}


# --- writing ------------------------------------------------------------------------------------------


def _pad(offset: int) -> int:
    return -offset % ALIGN


def _header(pickle_size: int, sizes: list[int]) -> bytes:
    body = FILE_MAGIC + _COUNTS.pack(len(sizes), pickle_size) + b"".join(_SIZE.pack(size) for size in sizes)
    return body + _CRC.pack(zlib.crc32(body))


def _layout(header_size: int, pickle_size: int, sizes: list[int]) -> tuple[int, list[int]]:
    """``(pickle offset, buffer offsets)``; the file's size is the last offset plus its size."""
    offset = header_size + _pad(header_size)
    pickle_at = offset
    offset += pickle_size
    offsets = []
    for size in sizes:
        offset += _pad(offset)
        offsets.append(offset)
        offset += size
    return pickle_at, offsets


def _write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def check_folder(folder: Path, *, create: bool = False) -> None:
    """Refuse a store folder someone else could have planted or changed (as the journal's files).
    ``create``: made first when missing, its entry in its parent fsynced then (a file written in it is
    durable once that file and this folder are fsynced)."""
    if create:
        try:
            folder.mkdir(mode=0o700)
            sync_folder(folder.parent)  # its entry, once: only a folder made now adds one
        except FileExistsError:
            pass
        except OSError as exc:
            raise ValueStoreError(f"cannot create the value store {folder}: {exc}") from exc
    try:
        info = os.lstat(folder)
    except OSError as exc:
        raise ValueLost(f"the value store {folder} cannot be read: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ValueStoreError(f"the value store {folder} is not a folder (a symlink or a file); refused")
    if _ownership.foreign(info):
        raise ValueStoreError(f"the value store {folder} belongs to {_ownership.who(info.st_uid)}, not to "
                              "this user; refused (its files would be unpickled)")
    if _ownership.writable_by_others(info, folder=True):
        raise ValueStoreError(f"the value store {folder} is writable by others (mode {_ownership.mode(info)}); "
                              f"refused (its files would be unpickled). `chmod 700 {folder}` if it is yours")


def write(folder: Path, data: bytes, buffers: list[pickle.PickleBuffer], kind: str) -> Ref:
    """Store a pickle and its out-of-band buffers as a new file, durable (file and folder entry
    fsynced) before this returns."""
    check_folder(folder, create=True)
    raws = [buffer.raw() for buffer in buffers]
    sizes = [raw.nbytes for raw in raws]
    header = _header(len(data), sizes)
    pickle_at, offsets = _layout(len(header), len(data), sizes)
    size = (offsets[-1] + sizes[-1]) if sizes else pickle_at + len(data)
    name = f"{os.urandom(16).hex()}{SUFFIX}"  # random as uuid4, without importing uuid (~2 ms)
    path = folder / name
    try:
        _write_file(path, header, data, raws, pickle_at, offsets)
        sync_folder(folder)
    except OSError as exc:
        raise ValueStoreError(f"cannot write a {kind} value of {size_text(size)} to the value store "
                              f"{folder}: {exc}") from exc
    return Ref(name, size, kind)


def _write_file(path: Path, header: bytes, data: bytes, raws: list[memoryview], pickle_at: int,
                offsets: list[int]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600)
    try:
        _write_all(fd, header + b"\0" * (pickle_at - len(header)))
        _write_all(fd, data)
        at = pickle_at + len(data)
        for raw, offset in zip(raws, offsets, strict=True):
            if offset > at:
                _write_all(fd, b"\0" * (offset - at))
            _write_all(fd, raw)  # the array's own memory: no intermediate copy
            at = offset + raw.nbytes
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    os.close(fd)


def sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _kind(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def size_text(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def describe(value: Any, size: int) -> str:
    """The preview journaled with a stored value: its kind, and dtype and shape for arrays."""
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if dtype is not None and isinstance(shape, tuple):
        text = f"<{_kind(value)} dtype={dtype} shape={shape}>"
    else:
        text = ser.preview(value)
    return f"{text} [stored: {size_text(size)}]"


def encode(value: Any, data: bytes, buffers: list[pickle.PickleBuffer], store: tuple[str, int]) -> \
        tuple[bytes, str | None]:
    """What to journal for ``value`` pickled as ``data`` (+ ``buffers``): its in-band pickle when small
    (``None`` preview: the caller's), else a reference to the file written now, with its preview."""
    folder, limit = store
    size = len(data) + sum(memoryview(buffer).nbytes for buffer in buffers)
    if size <= limit:
        return (ser.dumps(value) if buffers else data), None
    ref = write(Path(folder), data, buffers, _kind(value))
    return encode_ref(ref), describe(value, ref.size)


def dumps(value: Any, store: tuple[str, int], table: tuple[str, str] | None = None, name: str | None = None) -> \
        tuple[bytes, str]:
    """The driver's side: ``value`` (a workflow's input or output) as a pickle or a reference, with
    its preview. ``table``: ``(execution id, key)`` under which a table (a pandas or polars DataFrame,
    a pyarrow Table) is stored as Parquet whatever its size, as a step's output is (a workflow's output:
    ``OUTPUT_KEY``, its input: ``INPUT_KEY``); a table Parquet cannot hold stays a pickle, its preview
    saying why; ``name``: its file, when not ``table_name(*table)``."""
    note = None
    if table is not None and type(value).__name__ in tables.NAMES:
        kind = tables.kind_of(value)
        if kind is not None:
            ref, note = encode_table(value, kind, store, *table, name=name)
            if ref is not None:
                return ref, note
    data, buffers = ser.dumps_out_of_band(value)
    blob, text = encode(value, data, buffers, store)
    if note is not None:  # a table kept as a pickle keeps its note, with where it went
        return blob, note if text is None else f"{note} {text[text.rfind('[stored'):]}"
    return blob, text if text is not None else ser.preview(value)


def kept(blob: bytes | None, value: Any, folder: Path) -> tuple[bytes, str] | None:
    """``(blob, preview)`` when ``blob`` (``value`` as journaled before: the same input hash) is a
    reference to a value file of ``folder`` that is still whole (owner, mode, size, header checked; a
    table's Parquet file: owner, mode, size, the crc32 of its end), so a run of an execution does not
    write its large or table input again; None otherwise (write it)."""
    if blob is None or not is_ref(blob):
        return None
    ref = decode_ref(blob)
    table = ref.name.endswith(tables.SUFFIX)
    if not table and not ref.name.endswith(SUFFIX):
        return None
    try:
        fd = open_table(folder, ref)[0] if table else _open(folder, ref).fd
    except (ValueLost, ValueStoreError):
        return None
    os.close(fd)
    if not table:
        return blob, describe(value, ref.size)
    kind = tables.kind_of(value)
    if kind is None:
        return None
    arrow = value.to_arrow() if kind == "polars.DataFrame" else value  # the schema a polars frame shows
    return blob, tables.describe(value, kind, arrow, f"stored as Parquet: {size_text(ref.size)}")


# --- reading ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Opened:
    path: Path
    fd: int
    size: int
    pickle_at: int
    pickle_size: int
    buffers: list[tuple[int, int]]


def _check_file(fd: int, path: Path, ref: Ref) -> os.stat_result:
    """The open file's owner, mode and size, as the journal's files' (raises when refused or changed)."""
    info = os.fstat(fd)
    if _ownership.foreign(info):
        raise ValueStoreError(f"the stored value {path} belongs to {_ownership.who(info.st_uid)}, not to "
                              "this user; refused (it would be loaded)")
    if _ownership.writable_by_others(info):
        raise ValueStoreError(f"the stored value {path} is writable by others (mode {_ownership.mode(info)}); "
                              "refused (it would be loaded)")
    if info.st_size != ref.size:
        raise ValueLost(f"the stored value {path} has {info.st_size:,} bytes, not the {ref.size:,} "
                        "journaled (truncated or changed)")
    return info


def _open_stored(path: Path, what: str) -> int:
    """A stored file's descriptor (never following a symlink); a missing or unopenable one is lost."""
    try:
        return os.open(path, os.O_RDONLY | _FLAGS)
    except FileNotFoundError:
        raise ValueLost(f"the stored {what} {path} is missing") from None
    except OSError as exc:
        raise ValueLost(f"the stored {what} {path} cannot be opened: {exc}") from exc


def _open(folder: Path, ref: Ref) -> _Opened:
    check_folder(folder)
    path = folder / ref.name
    if "/" in ref.name or ref.name.startswith("."):
        raise ValueStoreError(f"a journaled value reference names {ref.name!r}, outside the store {folder}")
    fd = _open_stored(path, "value")
    try:
        info = _check_file(fd, path, ref)
        head = os.pread(fd, 4096, 0)
        if head[:8] != FILE_MAGIC or len(head) < 8 + _COUNTS.size:
            raise ValueLost(f"the stored value {path} is not a zart value file (bad header)")
        count, pickle_size = _COUNTS.unpack_from(head, 8)
        end = 8 + _COUNTS.size + count * _SIZE.size
        if end + _CRC.size > len(head):
            raise ValueLost(f"the stored value {path} has a damaged header")
        (crc,) = _CRC.unpack_from(head, end)
        if zlib.crc32(head[:end]) != crc:
            raise ValueLost(f"the stored value {path} fails its header checksum (damaged)")
        sizes = [_SIZE.unpack_from(head, 8 + _COUNTS.size + i * _SIZE.size)[0] for i in range(count)]
        pickle_at, offsets = _layout(end + _CRC.size, pickle_size, sizes)
        expected = (offsets[-1] + sizes[-1]) if sizes else pickle_at + pickle_size
        if expected != info.st_size:
            raise ValueLost(f"the stored value {path} has {info.st_size:,} bytes; its header says {expected:,}")
        return _Opened(path, fd, info.st_size, pickle_at, pickle_size, list(zip(offsets, sizes, strict=True)))
    except BaseException:
        os.close(fd)
        raise


def open_checked(folder: Path, ref: Ref) -> _Opened:
    """A stored value's file, open and checked (folder and file: owner, mode, size, header checksum),
    with its layout; the caller closes ``fd``. Nothing is read beyond the header."""
    return _open(folder, ref)


def load(blob: bytes, journal_path: str | os.PathLike[str], folder: Path | None = None) -> Any:
    """The value a journaled blob holds: unpickled, or loaded from the store when it is a reference
    (mapped copy-on-write); ``folder``: its execution's store when not the journal's own (``_stores``).
    An explicit unpickle: the read API never calls this."""
    return load_with_origin(blob, journal_path, folder).value


class Loaded(NamedTuple):
    """A loaded value and, when it came from the store, its file and that file's layout."""

    value: Any
    folder: Path | None = None
    ref: Ref | None = None
    size: int = 0
    buffers: tuple[tuple[int, int], ...] = ()  # (offset, size) of each out-of-band buffer in the file


def load_with_origin(blob: bytes, journal_path: str | os.PathLike[str], folder: Path | None = None) -> Loaded:
    """:func:`load`, saying where the value came from (``_byref`` passes such arrays on by reference)."""
    if not is_ref(blob):
        return Loaded(ser.loads(blob))
    folder = folder_for(journal_path) if folder is None else folder
    ref = decode_ref(blob)
    if ref.name.endswith(tables.SUFFIX):
        fd, path = open_table(folder, ref)
        try:
            return Loaded(tables.read(fd, ref.size, _table_kind(ref)), folder, ref, ref.size)
        except Exception as exc:
            raise ValueLost(f"the stored table {path} cannot be read: {type(exc).__name__}: {exc}") from exc
        finally:
            os.close(fd)
    opened = _open(folder, ref)
    try:  # a file of 0 bytes cannot be mapped, and a value file has at least its header
        mapped = mmap.mmap(opened.fd, opened.size, access=mmap.ACCESS_COPY)
    except OSError as exc:
        raise ValueLost(f"the stored value {opened.path} cannot be mapped: {exc}") from exc
    finally:
        os.close(opened.fd)
    view = memoryview(mapped)
    data = view[opened.pickle_at:opened.pickle_at + opened.pickle_size]
    buffers = [view[offset:offset + size] for offset, size in opened.buffers]
    plain = mapped.find(b"cloudpickle", opened.pickle_at, opened.pickle_at + opened.pickle_size) < 0
    try:
        value = ser.loads_buffers(data, buffers, plain)
    except Exception as exc:
        raise ValueLost(f"the stored value {opened.path} cannot be unpickled: {type(exc).__name__}: {exc}") \
            from exc
    return Loaded(value, folder, ref, opened.size, tuple(opened.buffers))


# --- tables: Parquet files under tables/<execution id>/<step key>.parquet -------------------------------

TABLES = "tables"
TAIL = 1 << 16  # a Parquet file's check: the crc32 of its last 64 KiB (its footer: schema, row groups, stats)
NAME_CHARS = 200
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.#:=+,@")


def file_part(text: str) -> str:
    """An execution id or step key as a file name: characters outside ``A-Za-z0-9-_.#:=+,@`` (and a
    leading ``.``) as ``%XX`` of their UTF-8 bytes, so no name is a path, hidden, or a glob pattern."""
    out = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
    out = "%2E" + out[1:] if out.startswith(".") else out
    if len(out) > NAME_CHARS:  # a file name has at most 255 bytes: the start, then a hash of the whole
        import hashlib  # only for names too long to keep: not on every import (~3 ms)

        out = f"{out[:NAME_CHARS - 17]}~{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return out


def table_name(execution_id: str, step_key: str) -> str:
    """A step's table, relative to the store: ``tables/<execution id>/<step key>.parquet``."""
    return f"{TABLES}/{file_part(execution_id)}/{file_part(step_key)}{tables.SUFFIX}"


def input_table_name(execution_id: str, journaled: bytes | None, input_hash: str) -> str:
    """Where a run writes its table input: ``tables/<execution id>/workflow:input.parquet``, unless the
    execution's journaled input (``journaled``, another input's) points to that file; then beside it,
    ``workflow:input.<16 hex digits of the input hash>.parquet``. The journal points to the new file once
    the run begins, never to a file replaced under it: a crash in between leaves the old input whole (a
    resume runs with it) and the new file an orphan for ``zart gc``."""
    plain = table_name(execution_id, INPUT_KEY)
    if journaled is None or not is_ref(journaled) or decode_ref(journaled).name != plain:
        return plain
    return f"{plain.removesuffix(tables.SUFFIX)}.{input_hash[:16]}{tables.SUFFIX}"


def _table_kind(ref: Ref) -> str:
    return ref.kind if ref.kind in tables.KINDS else "pyarrow.Table"


def _tail_check(fd: int, size: int) -> str:
    start = max(0, size - TAIL)
    return f"{zlib.crc32(os.pread(fd, size - start, start)):08x}"


def write_table(folder: Path, name: str, table: Any, kind: str) -> Ref:
    """Write ``table`` (a pyarrow Table) as the Parquet file ``name`` of the store: to a new file, fsynced,
    then renamed over the step's previous one (a record still pointing there fails its check: the step
    runs again), the folder entry fsynced before this returns."""
    check_folder(folder, create=True)
    directory = folder
    for part in name.split("/")[:-1]:
        directory = directory / part
        check_folder(directory, create=True)
    temporary = directory / f".{os.urandom(16).hex()}.tmp"
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600))
        tables.write(table, str(temporary))
        fd = os.open(temporary, os.O_RDONLY | _FLAGS)
        try:
            size = os.fstat(fd).st_size
            check = _tail_check(fd, size)
        finally:
            os.close(fd)
        os.replace(temporary, folder / name)
        sync_folder(directory)  # the folders above were synced as they were made (``check_folder``)
    except BaseException as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ValueStoreError(f"cannot write a {kind} to the value store {folder}: {exc}") from exc
        raise
    return Ref(name, size, kind, check)


def encode_table(value: Any, kind: str, store: tuple[str, int], execution_id: str, step_key: str, *,
                 name: str | None = None) -> tuple[bytes | None, str]:
    """``(reference, preview)`` of a table stored as Parquet (as the file ``name``, default
    ``table_name(execution_id, step_key)``), or ``(None, preview)`` saying why it stays a pickle."""
    from ._parquet import Unconvertible

    table, why = tables.to_arrow(value, kind)
    if table is None:
        return None, tables.pickled_note(value, kind, why or "")
    try:
        ref = write_table(Path(store[0]), name or table_name(execution_id, step_key), table, kind)
    except Unconvertible as exc:  # a slice of a large frame Arrow could not convert after all
        return None, tables.pickled_note(value, kind, str(exc))
    return encode_ref(ref), tables.describe(value, kind, table, f"stored as Parquet: {size_text(ref.size)}")


def open_table(folder: Path, ref: Ref) -> tuple[int, Path]:
    """The stored table's file, open and checked (the store's folders and the file: owner, mode, size,
    the crc32 of its end), before anything reads it. The caller closes the descriptor."""
    parts = ref.name.split("/")
    if len(parts) != 3 or parts[0] != TABLES or any(not part or part.startswith(".") for part in parts):
        raise ValueStoreError(f"a journaled table reference names {ref.name!r}, outside the store {folder}")
    check_folder(folder)
    check_folder(folder / parts[0])
    check_folder(folder / parts[0] / parts[1])
    path = folder / ref.name
    fd = _open_stored(path, "table")
    try:
        _check_file(fd, path, ref)
        if ref.check and _tail_check(fd, ref.size) != ref.check:
            raise ValueLost(f"the stored table {path} fails its check (changed or damaged)")
    except BaseException:
        os.close(fd)
        raise
    return fd, path
