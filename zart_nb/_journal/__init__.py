"""The journal: the only package that imports DuckDB and speaks SQL.

``journal`` holds the file and writes to it; ``file`` opens it (lock waits, owner-only files, orphaned
runs); ``schema`` has the migrations and the row types; ``queries`` the record reads behind
``reader.FileJournalReader``; ``sidelog`` is the fsynced log finished steps reach before DuckDB (its
record kinds: ``sidelog.Tag``) and ``fold`` the transaction that writes them into DuckDB; ``runs`` the SQL
of run control (a run's beginning, end and heartbeat, status, deletion, a fork's copy); ``inbox`` the
events sent to executions and the values they published.
"""
from .journal import Journal, StoredExecution, StoredStep
from .runs import RunBeat
from .schema import ATTEMPT_COLUMNS, SCHEMA_VERSION, STEP_COLUMNS, AttemptRow, InFlightRow, StepRow

__all__ = ["ATTEMPT_COLUMNS", "SCHEMA_VERSION", "STEP_COLUMNS", "AttemptRow", "InFlightRow", "Journal", "RunBeat",
           "StepRow", "StoredExecution", "StoredStep"]
