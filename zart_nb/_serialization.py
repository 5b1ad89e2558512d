"""Pickling, canonical hashing of arguments and code, and text previews.

Values cross two boundaries: driver <-> worker processes (a private socketpair) and driver <-> journal.
Plain ``pickle`` is tried first because it is several times faster than cloudpickle for plain data;
cloudpickle takes over for what plain pickle cannot do (functions and classes defined in ``__main__``,
i.e. in a notebook cell, travel by value).
"""
from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import inspect
import io
import pickle
import reprlib
import sys
import types
import weakref
from _blake2 import blake2b  # what hashlib.blake2b is, without loading OpenSSL (~2 ms)
from collections.abc import Callable
from typing import Any, NamedTuple, cast

from ._errors import SerializationError

PROTOCOL = 5
PREVIEW_CHARS = 200
MAX_TEXT = 64 * 1024  # an error message or traceback longer than this is cut, with a note

class _Preview(reprlib.Repr):
    """reprlib's short rendering, with data named by kind and size instead of printed: a DataFrame, a
    Series, a pyarrow Table or an array of more than a few items anywhere in a value (an argument that
    is a list of frames, an output dict holding one) reads ``<pandas.DataFrame rows=200,000 columns=3>``,
    not the first lines of its table with its newlines escaped. Found by type name (reprlib's
    ``repr_<name>``): nothing is imported, other types pay nothing."""

    def repr_DataFrame(self, value: Any, level: int) -> str:
        from . import _tables as tables  # only when a frame is met: a worker process never imports it

        kind = tables.kind_of(value)
        return self.repr_instance(value, level) if kind is None else tables.sized(value, kind)

    repr_Table = repr_DataFrame

    def repr_Series(self, value: Any, level: int) -> str:
        root = _root(value)
        if root not in ("pandas", "polars"):
            return self.repr_instance(value, level)
        name = "" if value.name is None or value.name == "" else f" {self.repr1(value.name, level - 1)}"
        return f"<{root}.Series{name} rows={len(value):,} dtype={value.dtype}>"

    def repr_ndarray(self, value: Any, level: int) -> str:
        if _root(value) != "numpy" or (value.ndim <= 1 and value.size <= 16):
            return self.repr_instance(value, level)
        return f"<numpy.ndarray dtype={value.dtype} shape={value.shape}>"


def _root(value: Any) -> str:
    return type(value).__module__.partition(".")[0]


_repr = _Preview()
_repr.maxstring = 120
_repr.maxother = 120
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8
_repr.maxlevel = 4


def _refuse_file(obj: Any) -> Any:
    name = getattr(obj, "name", None)
    raise SerializationError(f"an open file{'' if name is None else f' ({name!r})'} cannot travel to "
                             "another process or into the journal (cloudpickle would send a copy of its "
                             "contents); pass its path instead")


_FILE_TYPES = (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO)


@functools.cache
def _pickler_class() -> type[pickle.Pickler]:
    """cloudpickle's pickler, refusing open files instead of sending a ``StringIO`` copy of them.
    cloudpickle is imported on first use: returning a finished execution's output never needs it."""
    import cloudpickle

    class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle has no type hints (Any)
        dispatch_table = collections.ChainMap({kind: _refuse_file for kind in _FILE_TYPES},
                                              cloudpickle.Pickler.dispatch_table)

    return _Pickler


def _cloudpickle(value: Any) -> bytes:
    buffer = io.BytesIO()
    _pickler_class()(buffer, protocol=PROTOCOL).dump(value)
    return buffer.getvalue()


def dumps(value: Any) -> bytes:
    """Pickle ``value``: plain pickle when it can, cloudpickle (by value for ``__main__``) otherwise."""
    try:
        return pickle.dumps(value, PROTOCOL)
    except Exception:
        return _cloudpickle(value)


def dumps_out_of_band(value: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """:func:`dumps`, with the value's buffers (numpy arrays) apart, not copied into the pickle (the
    value store writes them raw; a small value's pickle is :func:`dumps`'s with no buffer)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        return pickle.dumps(value, PROTOCOL, buffer_callback=buffers.append), buffers
    except Exception:
        buffers = []
        stream = io.BytesIO()
        _pickler_class()(stream, protocol=PROTOCOL, buffer_callback=buffers.append).dump(value)
        return stream.getvalue(), buffers


def dumps_by_value(value: Any) -> bytes:
    """cloudpickle, for definitions (functions/classes) that must be rebuilt in another process."""
    return _cloudpickle(value)


# --- loading: a class defined in ``__main__`` resolves to the *current* class of that name -------------
#
# A dataclass defined in a notebook cell is pickled by value. Loaded in a later kernel (a resume), the
# by-value copy would be a different class from the one the re-run cell just defined, so ``isinstance``
# and ``==`` would fail. When ``__main__`` holds a class of the same name, we adopt it instead.

_adopted: weakref.WeakSet[type] = weakref.WeakSet()


def _make_skeleton_class(type_constructor: Callable[..., type], name: str, bases: tuple[type, ...],
                          type_kwargs: dict[str, Any], class_tracker_id: str | None, extra: Any) -> type:
    from cloudpickle import cloudpickle as _cp  # loaded already: the stream being read names it

    with _cp._DYNAMIC_CLASS_TRACKER_LOCK:
        known = _cp._DYNAMIC_CLASS_TRACKER_BY_ID.get(class_tracker_id)
    if known is None and type_kwargs.get("__module__") == "__main__":
        current = getattr(sys.modules.get("__main__"), name, None)
        if isinstance(current, type) and current.__module__ == "__main__":
            _adopted.add(current)
            return cast(type, _cp._lookup_class_or_track(class_tracker_id, current))
    return cast(type, _cp._make_skeleton_class(type_constructor, name, bases, type_kwargs, class_tracker_id, extra))


def _class_setstate(obj: type, state: tuple[dict[str, Any], dict[str, Any]]) -> type:
    if obj in _adopted:
        return obj
    from cloudpickle import cloudpickle as _cp

    return cast(type, _cp._class_setstate(obj, state))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("cloudpickle"):
            if name == "_make_skeleton_class":
                return _make_skeleton_class
            if name == "_class_setstate":
                return _class_setstate
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """Unpickle trusted bytes (from our own workers or journal)."""
    if b"cloudpickle" not in data:  # plain data: the C unpickler alone is several times faster
        return pickle.loads(data)
    return _Unpickler(io.BytesIO(data)).load()


def loads_buffers(data: memoryview, buffers: list[memoryview], plain: bool) -> Any:
    """Unpickle a stored value with its out-of-band buffers (``plain``: no cloudpickle in it)."""
    if plain:
        return pickle.loads(data, buffers=buffers)
    return _Unpickler(io.BytesIO(data), buffers=buffers).load()


# --- previews ---------------------------------------------------------------------------------------


def cap_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, with a note saying so (errors are journaled and shown)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n... [zart: cut {len(text) - limit:,} of {len(text):,} characters]"


def preview(value: Any) -> str:
    """A short, never-failing text rendering stored next to every pickle (the TUI never unpickles)."""
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the value
        text = f"<{type(value).__name__} (repr failed: {exc.__class__.__name__})>"
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


_SCALARS = (float, bool, type(None))
_BIG = 10**40  # an int beyond this goes through reprlib: repr() of 4,300 digits or more raises


def quick_preview(value: Any) -> str:
    """:func:`preview`, without reprlib for the common small values (a step's result, its arguments)."""
    kind = type(value)
    if kind in _SCALARS or (kind is str and len(value) <= 120) or (kind is int and -_BIG < value < _BIG):
        return repr(value)
    return preview(value)


def args_preview(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [quick_preview(a) for a in args] + [f"{k}={quick_preview(v)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


# --- canonical hashing of values --------------------------------------------------------------------

_SIMPLE = (str, int, float, bool, type(None), bytes)


def _is_simple(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if kind in _SIMPLE:
        return True
    if (kind is tuple or kind is list) and depth < 20:  # deeper (or a list that holds itself): canonical
        for item in value:
            if type(item) not in _SIMPLE and not _is_simple(item, depth + 1):
                return False
        return True
    return False


def _canonical(value: Any, out: list[str], depth: int = 0) -> None:
    """Append a process-independent rendering of ``value`` (sets and dicts in sorted order)."""
    kind = type(value)
    if kind in _SIMPLE:
        try:
            out.append(repr(value))
        except ValueError:  # an int of 4,300 digits or more: repr() refuses, hex() does not
            out.append(hex(value))
    elif depth > 50:
        out.append(_pickle_digest(value))
    elif kind in (tuple, list):
        out.append("(" if kind is tuple else "[")
        for item in value:
            _canonical(item, out, depth + 1)
            out.append(",")
        out.append(")" if kind is tuple else "]")
    elif kind in (set, frozenset):
        items = []
        for item in value:
            sub: list[str] = []
            _canonical(item, sub, depth + 1)
            items.append("".join(sub))
        out.append("{" + ",".join(sorted(items)) + "}")
    elif kind is dict:
        items = []
        for key, item in value.items():
            sub = []
            _canonical(key, sub, depth + 1)
            sub.append(":")
            _canonical(item, sub, depth + 1)
            items.append("".join(sub))
        out.append("{" + ",".join(sorted(items)) + "}")
    elif isinstance(value, enum.Enum):
        out.append(f"{kind.__qualname__}.{value.name}")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out.append(kind.__qualname__ + "(")
        for field in dataclasses.fields(value):
            out.append(field.name + "=")
            _canonical(getattr(value, field.name), out, depth + 1)
            out.append(",")
        out.append(")")
    else:
        out.append(_pickle_digest(value))


def _pickle_digest(value: Any) -> str:
    try:
        data = dumps(value)
    except Exception as exc:
        raise SerializationError(f"cannot pickle {type(value).__name__}: {exc}") from exc
    return "p:" + blake2b(data, digest_size=16).hexdigest()


def args_hash(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A digest of call arguments that is equal across processes for equal values."""
    text = None
    if not kwargs and _is_simple(args):
        try:
            text = repr(args)
        except ValueError:  # an int too long for repr(): the canonical rendering copes
            pass
    if text is None:
        out: list[str] = []
        _canonical(args, out)
        _canonical(kwargs, out)
        text = "".join(out)
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


# --- a call's arguments, encoded in one pass --------------------------------------------------------


class EncodedCall(NamedTuple):
    """A call's arguments as the journal and a worker take them (:func:`encode_call`)."""

    blob: bytes  # the pickle of (args, kwargs) as sent: by-reference arguments are their references
    hash: str  # ``args_hash`` of the arguments as hashed (or of the identity given in their place)
    preview: str  # ``args_preview`` of the arguments as given


_encoded = functools.partial(tuple.__new__, EncodedCall)  # a C call: no NamedTuple __new__ per step


def encode_call(args: tuple[Any, ...], kwargs: dict[str, Any],
                by_reference: tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...], dict[str, Any]] | None = None,
                *, identity: tuple[Any, ...] | None = None, fn: Callable[..., Any] | None = None,
                step_key: str = "") -> EncodedCall:
    """The blob, the hash and the preview of a call, from one pass over its arguments: equal to
    ``dumps((args, kwargs))``, ``args_hash(args, kwargs)`` and ``args_preview(args, kwargs)``.

    ``by_reference`` is ``(args, kwargs)`` to send then to hash when some arguments travel as their
    stored value's reference (``_byref.replace``); ``identity``, what the call is hashed by in place of
    its arguments. On failure the :class:`SerializationError` names the argument that cannot be pickled
    (by ``fn``'s parameter name when given) and the step (``step_key``).

    Arguments that are all short scalars (``noop(i)``: what fan-outs mostly pass) take one walk: the
    ``repr`` of the arguments is the hash's text and, without its parentheses, the preview."""
    if by_reference is None and identity is None and not kwargs:
        for value in args:
            kind = type(value)
            if kind is int:
                if not -_BIG < value < _BIG:
                    break
            elif kind is str:
                if len(value) > 120:
                    break
            elif kind not in _SCALARS:
                break
        else:
            text = repr(args)
            shown = text[1:-2] if len(args) == 1 else text[1:-1]
            if len(shown) > PREVIEW_CHARS:
                shown = shown[: PREVIEW_CHARS - 3] + "..."
            return _encoded((pickle.dumps((args, kwargs), PROTOCOL),
                             blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest(), shown))
    sent_args, sent_kwargs, hashed_args, hashed_kwargs = by_reference or (args, kwargs, args, kwargs)
    try:
        hashed = args_hash(hashed_args, hashed_kwargs) if identity is None else args_hash(identity, {})
        blob = dumps((sent_args, sent_kwargs))
    except Exception as exc:
        raise argument_error(args, kwargs, exc, fn=fn, step_key=step_key) from exc
    return _encoded((blob, hashed, args_preview(args, kwargs)))


def argument_error(args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException, *,
                   fn: Callable[..., Any] | None = None, step_key: str = "") -> SerializationError:
    """The error of a call whose arguments cannot be pickled (or hashed), naming the argument: each is
    tried alone, where it stands (a failure path: its cost does not matter)."""
    where = "an argument"
    names = _positional_names(fn)
    placed: list[tuple[str, Any]] = [(names[index] if index < len(names) else f"#{index}", value)
                                     for index, value in enumerate(args)]
    for name, value in [*placed, *kwargs.items()]:
        try:
            dumps(value)
        except Exception:
            where = f"argument {name!r}"
            break
    of = f" of step {step_key!r}" if step_key else ""
    return SerializationError(f"{where}{of} cannot be pickled: {_text(exc)}")


def _positional_names(fn: Callable[..., Any] | None) -> list[str]:
    """The names of ``fn``'s positional parameters, in order (none when it has no signature)."""
    if fn is None:
        return []
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _text(exc: BaseException) -> str:
    """``str(exc)`` cut to a journal-sized length; user code may make ``__str__`` fail."""
    try:
        text = str(exc)
    except BaseException as error:  # noqa: BLE001 - reported, not raised
        text = f"<str() of the {type(exc).__name__} raised {type(error).__name__}>"
    return cap_text(text)


# --- hashing of code --------------------------------------------------------------------------------


def code_hash(obj: Callable[..., Any] | type | object) -> str:
    """A digest of what a function (or class, or instance's class) *does*.

    Bytecode, constants and names count; line numbers, comments and formatting do not. Functions and
    classes of the same module that the code refers to (helpers) count too, as do simple constants in
    its globals and closure cells, so a changed helper re-runs the step.
    """
    hasher = blake2b(digest_size=16)
    _hash_object(obj, hasher, {})
    return hasher.hexdigest()


def _hash_object(obj: Any, hasher: Any, seen: dict[int, Any]) -> None:
    if id(obj) in seen:
        hasher.update(b"<seen>")
        return
    seen[id(obj)] = obj  # held for the walk: a freed temporary's id could be reused by another object
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, functools.partial):
        _hash_object(obj.func, hasher, seen)
        hasher.update(args_hash(obj.args, obj.keywords or {}).encode())
        return
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    if isinstance(obj, types.FunctionType):
        _hash_function(obj, hasher, seen)
    elif isinstance(obj, type):
        hasher.update(f"class {obj.__module__}.{obj.__qualname__}".encode())
        for name, member in sorted(vars(obj).items()):
            if isinstance(member, (types.FunctionType, staticmethod, classmethod, property)):
                hasher.update(name.encode())
                target = member.fget if isinstance(member, property) else member
                if target is not None:
                    _hash_object(target, hasher, seen)
            elif hasattr(member, "__wrapped_fn__"):  # a Step held by the class (``fetch = zart.step(...)(f)``)
                hasher.update(name.encode())
                _hash_object(member.__wrapped_fn__, hasher, seen)
    elif hasattr(obj, "__wrapped_fn__"):  # a zart Step
        _hash_object(obj.__wrapped_fn__, hasher, seen)
    elif callable(obj) and not isinstance(obj, types.BuiltinFunctionType):
        _hash_object(type(obj), hasher, seen)
    elif type(obj) in _SIMPLE:
        hasher.update(repr(obj).encode())
    else:  # an instance (a DurableExecution): its class and its attributes, never its address
        _hash_object(type(obj), hasher, seen)
        try:
            hasher.update(args_hash((getattr(obj, "__dict__", {}),), {}).encode())
        except SerializationError:
            hasher.update(b"<unhashable attributes>")


def _hash_function(fn: types.FunctionType, hasher: Any, seen: dict[int, Any]) -> None:
    _hash_code(fn.__code__, hasher, fn.__doc__)
    if fn.__defaults__ or fn.__kwdefaults__:
        try:
            hasher.update(args_hash(fn.__defaults__ or (), fn.__kwdefaults__ or {}).encode())
        except SerializationError:
            hasher.update(repr([type(d).__qualname__ for d in fn.__defaults__ or ()]).encode())
    module = fn.__module__
    for name in sorted(global_names(fn.__code__)):  # set order varies by process
        if name in fn.__globals__:
            _hash_reference(name, fn.__globals__[name], module, hasher, seen)
    for cell_name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            contents = cell.cell_contents
        except ValueError:
            continue
        _hash_reference(cell_name, contents, module, hasher, seen)


def _hash_reference(name: str, value: Any, module: str, hasher: Any, seen: dict[int, Any]) -> None:
    if type(value) in _SIMPLE:
        hasher.update(f"{name}={value!r}".encode())
    elif isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) == module:
        hasher.update(name.encode())
        _hash_object(value, hasher, seen)
    elif hasattr(value, "__wrapped_fn__") and getattr(value.__wrapped_fn__, "__module__", None) == module:
        hasher.update(name.encode())
        _hash_object(value.__wrapped_fn__, hasher, seen)


def global_names(code: types.CodeType) -> set[str]:
    """The global names a code object (and the code nested in it) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_names(const)
    return names


def _hash_code(code: types.CodeType, hasher: Any, doc: str | None = None) -> None:
    hasher.update(code.co_code)
    hasher.update(repr(code.co_names).encode())
    hasher.update(repr(code.co_varnames).encode())
    hasher.update(repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(const, hasher)
        elif doc is not None and const is doc:
            continue
        else:
            hasher.update(repr(const).encode())


def source_of(obj: Any) -> str:
    """Source text of a definition when available (cells and scripts), else an empty string."""
    target = getattr(obj, "__wrapped_fn__", obj)
    if not isinstance(target, (type, types.FunctionType, types.MethodType)):
        target = type(target)
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        return ""


def digest(data: bytes) -> str:
    return blake2b(data, digest_size=16).hexdigest()

