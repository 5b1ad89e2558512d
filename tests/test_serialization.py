"""Canonical argument hashes, code hashes that ignore formatting, previews."""
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass

import pytest

import zart_nb as zart
from zart_nb import _serialization as ser


def test_args_hash_is_equal_across_processes_for_sets_and_dicts():
    code = "from zart_nb._serialization import args_hash; " \
           "print(args_hash(({'b', 'a', 'c'}, {'y': 1, 'x': frozenset({'p', 'q'})}), {'k': {3, 1}}))"
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1
    assert digests == {ser.args_hash(({"c", "b", "a"}, {"x": frozenset({"q", "p"}), "y": 1}), {"k": {1, 3}})}


def test_args_hash_distinguishes_values():
    assert ser.args_hash((1,), {}) != ser.args_hash((2,), {})
    assert ser.args_hash((1,), {}) != ser.args_hash(("1",), {})
    assert ser.args_hash(([1, 2],), {}) != ser.args_hash(((1, 2),), {})
    assert ser.args_hash((), {"a": 1}) != ser.args_hash((), {"a": 2})


@dataclass
class Box:
    items: set


def test_args_hash_of_dataclasses_is_canonical():
    assert ser.args_hash((Box({"a", "b"}),), {}) == ser.args_hash((Box({"b", "a"}),), {})
    assert ser.args_hash((Box({"a"}),), {}) != ser.args_hash((Box({"b"}),), {})


def test_unpicklable_argument_is_a_serialization_error():
    with pytest.raises(zart.SerializationError, match="lock"):
        ser.args_hash((threading.Lock(),), {})


def _code_hash_of(source: str, name: str = "f") -> str:
    namespace: dict = {"__name__": "snippet"}
    exec(compile(textwrap.dedent(source), "<cell>", "exec"), namespace)
    return ser.code_hash(namespace[name])


def test_code_hash_ignores_comments_and_formatting():
    a = _code_hash_of("""
        def f(x):
            return x + 1
    """)
    b = _code_hash_of("""


        def f(x):   # a comment
            # another comment
            return (x +
                    1)
    """)
    assert a == b


def test_code_hash_sees_code_and_helper_changes():
    base = _code_hash_of("""
        def helper(x):
            return x * 2
        def f(x):
            return helper(x) + 1
    """)
    changed_body = _code_hash_of("""
        def helper(x):
            return x * 2
        def f(x):
            return helper(x) + 2
    """)
    changed_helper = _code_hash_of("""
        def helper(x):
            return x * 3
        def f(x):
            return helper(x) + 1
    """)
    changed_constant = _code_hash_of("""
        LIMIT = 5
        def f(x):
            return x + LIMIT
    """) != _code_hash_of("""
        LIMIT = 6
        def f(x):
            return x + LIMIT
    """)
    assert len({base, changed_body, changed_helper}) == 3
    assert changed_constant


def test_code_hash_of_a_class_style_workflow_sees_a_step_it_holds_as_an_attribute():
    def flow(body: str) -> str:
        return f"""
            import zart_nb as zart

            def fetch(x):
                return {body}

            class Flow(zart.DurableExecution):
                fetch_step = zart.step("held-fetch")(fetch)

                def run(self, data):
                    return self.fetch_step(data)

            f = Flow()
        """

    base, changed, same = (_code_hash_of(flow(b)) for b in ("x + 1", "x + 2", "x + 1"))
    assert base == same  # stable across definitions of the same code
    assert base != changed  # the held step's function changed: the workflow's code did


def test_previews_are_short_and_never_fail():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    assert "Broken" in ser.preview(Broken())  # a broken __repr__ still gives a preview
    assert len(ser.preview("x" * 10_000)) <= ser.PREVIEW_CHARS
    assert ser.preview([1, 2]) == "[1, 2]"


def test_previews_name_data_by_kind_and_size_wherever_it_is_held():
    """A frame, a Series, a Table or an array of more than a few items inside a value (an argument that is a
    list of frames, an output dict holding one) is named by kind and size, not printed with escaped newlines."""
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"region": ["eu"] * 200_000, "sales": np.arange(200_000) * 0.5})
    assert ser.preview({"summary": frame, "trace": 1.0}) == \
        "{'summary': <pandas.DataFrame rows=200,000 columns=2>, 'trace': 1.0}"
    assert ser.args_preview(([frame, frame.head(3)],), {"n": 2}) == \
        "[<pandas.DataFrame rows=200,000 columns=2>, <pandas.DataFrame rows=3 columns=2>], n=2"
    assert ser.preview((frame["sales"], pd.Series([1], name=None))) == \
        "(<pandas.Series 'sales' rows=200,000 dtype=float64>, <pandas.Series rows=1 dtype=int64>)"
    assert ser.preview([np.ones((1000, 1000)), np.arange(3), pa.table({"a": [1, 2]})]) == \
        "[<numpy.ndarray dtype=float64 shape=(1000, 1000)>, array([0, 1, 2]), <pyarrow.Table rows=2 columns=1>]"
    assert ser.preview(np.arange(17)) == "<numpy.ndarray dtype=int64 shape=(17,)>"  # more than a few items
    call = ser.encode_call(([frame],), {})
    assert call.preview == "[<pandas.DataFrame rows=200,000 columns=2>]"


class _NotData:
    """A type named like a data type (reprlib finds the rendering by type name): printed as before."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __repr__(self) -> str:
        return f"DataFrame({self.rows})"


def test_a_type_named_like_data_but_from_elsewhere_keeps_its_repr():
    kind = type("DataFrame", (_NotData,), {})
    assert ser.preview([kind(3)]) == "[DataFrame(3)]"
    assert ser.preview([type("ndarray", (_NotData,), {})(4), type("Series", (_NotData,), {})(5)]) == \
        "[DataFrame(4), DataFrame(5)]"


class _Colour(__import__("enum").Enum):
    RED = 1


@pytest.mark.parametrize("args, kwargs", [
    ((), {}),
    ((7,), {}),
    ((1, 2.5, None, True, "a", -3), {}),
    (("x" * 120,), {}),  # the longest string shown whole
    (("x" * 121,), {}),  # cut by reprlib in the preview
    ((10**40,), {}),  # an int beyond the quick preview
    ((10**5000,), {}),  # an int too long for repr()
    ((float("nan"), float("inf")), {}),
    ((b"bytes", [1, (2, 3)], {"b": 1, "a": {3, 1}}), {}),
    ((1,), {"k": "v", "n": None}),
    ((_Colour.RED, _Colour), {}),
    (tuple(range(100)), {}),  # a preview longer than PREVIEW_CHARS
    (("é\ud800",), {}),  # a lone surrogate
])
def test_encode_call_gives_what_the_three_separate_calls_give(args, kwargs):
    call = ser.encode_call(args, kwargs)
    assert call == (ser.dumps((args, kwargs)), ser.args_hash(args, kwargs), ser.args_preview(args, kwargs))
    assert (call.blob, call.hash, call.preview) == tuple(call)
    assert ser.loads(call.blob)[1] == kwargs and len(ser.loads(call.blob)[0]) == len(args)


def test_encode_call_sends_and_hashes_what_it_is_told_and_previews_the_arguments_given():
    sent, hashed = ("reference",), ("key",)
    call = ser.encode_call(([1, 2],), {}, (sent, {"k": 1}, hashed, {"k": 2}))
    assert ser.loads(call.blob) == (sent, {"k": 1})
    assert call.hash == ser.args_hash(hashed, {"k": 2})
    assert call.preview == "[1, 2]"
    by_identity = ser.encode_call((3,), {}, identity=("chosen", 1))
    assert by_identity.hash == ser.args_hash(("chosen", 1), {}) != ser.args_hash((3,), {})
    assert ser.loads(by_identity.blob) == ((3,), {}) and by_identity.preview == "3"


def test_encode_call_names_the_argument_that_cannot_be_pickled():
    def load(path, handle, *rest, mode="r"):
        return path

    lock = threading.Lock()
    with pytest.raises(zart.SerializationError, match=r"^argument 'handle' of step 'load#0' cannot be pickled"):
        ser.encode_call(("p", lock), {}, fn=load, step_key="load#0")
    with pytest.raises(zart.SerializationError, match=r"^argument '#3' of step 'load#0'"):
        ser.encode_call(("p", 1, 2, lock), {}, fn=load, step_key="load#0")  # in *rest: its position
    with pytest.raises(zart.SerializationError, match=r"^argument 'mode' cannot be pickled: .*lock"):
        ser.encode_call(("p",), {"mode": lock}, fn=load)
    with pytest.raises(zart.SerializationError, match=r"^argument '#1' cannot be pickled"):
        ser.encode_call(("p", [lock]), {})  # no function: by position
