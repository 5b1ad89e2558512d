"""How a journaled value store reference begins, apart from ``_values`` (which imports the replay rules,
and so the journal's types): the journal's SQL (``_journal/stores.py``) reads references by this prefix,
as a range of BLOB values, without importing ``_values``."""
from __future__ import annotations

REF_MAGIC = b"\x00zart-value-ref\x01"  # never the start of a pickle (protocol 2+ starts with \x80)
# The blobs that begin with REF_MAGIC are those in [REF_MAGIC, REF_END): its last byte plus one.
REF_END = REF_MAGIC[:-1] + bytes([REF_MAGIC[-1] + 1])
