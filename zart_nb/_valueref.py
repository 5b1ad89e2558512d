"""How a journaled value store reference begins, apart from ``_values`` (which imports the replay rules,
and so the journal's types): the journal's SQL (``_journal/stores.py``) reads references by this prefix,
as a range of BLOB values, without importing ``_values``."""
from __future__ import annotations

REF_MAGIC = b"\x00zart-value-ref\x01"  # never the start of a pickle (protocol 2+ starts with \x80)


def prefix_span(prefix: bytes) -> tuple[bytes, bytes]:
    """``(low, high)``: the BLOB values that begin with ``prefix`` are those in ``[low, high)`` (its last
    byte plus one; ``prefix`` must not end with ``\xff``)."""
    return prefix, prefix[:-1] + bytes([prefix[-1] + 1])


REF_END = prefix_span(REF_MAGIC)[1]
