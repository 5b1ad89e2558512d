"""The journal: the only package that imports DuckDB and speaks SQL.

``journal`` owns the file (opening, locking, migrations, writes); ``sidelog`` is the fsynced log
finished steps reach before DuckDB.
"""
from .journal import SCHEMA_VERSION, STEP_COLUMNS, Journal, StoredExecution, StoredStep

__all__ = ["SCHEMA_VERSION", "STEP_COLUMNS", "Journal", "StoredExecution", "StoredStep"]
