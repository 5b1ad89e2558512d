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


def test_previews_are_short_and_never_fail():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    assert "Broken" in ser.preview(Broken())  # a broken __repr__ still gives a preview
    assert len(ser.preview("x" * 10_000)) <= ser.PREVIEW_CHARS
    assert ser.preview([1, 2]) == "[1, 2]"
