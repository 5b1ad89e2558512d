"""The process's journals are looked up through one front door, ``runtime.journal(path)``, which builds
each one whole under one lock: no thread ever finds a half-built journal (``zart-tui`` crashed on one,
``AttributeError: 'Journal' object has no attribute 'path'``, when two reader threads opened a file the
engine had just released)."""
from __future__ import annotations

import threading

import zart_nb as zart
from zart_nb._journal.reader import FileJournalReader
from zart_nb._runtime import runtime

ROUNDS = 25
READERS = 8


def test_threads_asking_for_a_journal_while_it_is_released_never_see_a_half_built_one(tmp_path):
    path = tmp_path / "j.duckdb"
    zart.run(lambda x: x + 1, 1, execution_id="one", journal=path, workers=1)
    errors: list[BaseException] = []
    for _ in range(ROUNDS):
        # As after a release seen for the first time by this process: the next lookups build it anew.
        runtime.forget_journal(runtime.journal(path))
        barrier = threading.Barrier(READERS + 1)
        seen: list[object] = []

        def read(barrier: threading.Barrier, seen: list[object]) -> None:
            try:
                barrier.wait()
                journal = runtime.journal(path, lock_timeout=30)
                seen.append(journal)
                assert [r.execution_id for r in FileJournalReader(journal).list_executions()] == ["one"]
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                errors.append(exc)

        def hold_and_release(barrier: threading.Barrier, seen: list[object]) -> None:
            try:
                barrier.wait()
                journal = runtime.journal(path, lock_timeout=30)
                seen.append(journal)
                with journal.hold():
                    pass
                journal.close()
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                errors.append(exc)

        threads = [threading.Thread(target=read, args=(barrier, seen)) for _ in range(READERS)]
        threads.append(threading.Thread(target=hold_and_release, args=(barrier, seen)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert len(seen) == READERS + 1 and all(journal is seen[0] for journal in seen)
    runtime.journal(path).close()


def test_a_journal_created_here_is_found_by_another_of_its_names(tmp_path):
    first = tmp_path / "j.duckdb"
    journal = runtime.journal(first)
    FileJournalReader(journal).list_executions()  # creates the file under its first name
    (tmp_path / "link.duckdb").hardlink_to(first)
    assert runtime.journal(tmp_path / "link.duckdb") is journal
    assert journal in runtime.open_journals()
    runtime.forget_journal(journal)
    assert journal not in runtime.open_journals()
    assert runtime.journal(first) is not journal
    runtime.journal(first).close()


def test_journals_are_built_only_by_the_runtime():
    """``Journal(path)`` anywhere else would make a second object for a file the registry knows."""
    import ast
    from pathlib import Path

    root = Path(zart.__file__).parent.parent
    offenders = []
    for folder in ("zart_nb", "tui", "tests", "bench"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) \
                        else None
                    if name == "Journal" and path.name != "_runtime.py":
                        offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


def test_a_journal_created_and_released_here_is_found_by_a_hard_link(tmp_path):
    first = tmp_path / "j.duckdb"
    journal = runtime.journal(first)  # looked up before its file exists
    FileJournalReader(journal).list_executions()
    journal.close()
    (tmp_path / "link.duckdb").hardlink_to(first)
    assert runtime.journal(tmp_path / "link.duckdb") is journal
    runtime.forget_journal(journal)
