"""The package surface: a tested __all__, and no UI library imported by the engine."""
import json
import subprocess
import sys

import zart_nb


def test_all_lists_exactly_the_public_names():
    public = {name for name in dir(zart_nb) if not name.startswith("_")} - {
        # submodules are not API
        name for name in dir(zart_nb) if type(getattr(zart_nb, name)).__name__ == "module"}
    assert set(zart_nb.__all__) - {"__version__"} == public
    assert zart_nb.__all__ == sorted(zart_nb.__all__, key=str.casefold)


def test_public_callables_have_docstrings():
    missing = [name for name in zart_nb.__all__
               if callable(getattr(zart_nb, name)) and not getattr(zart_nb, name).__doc__]
    assert missing == []


def test_engine_imports_no_ui_library():
    code = ("import sys, zart_nb, zart_nb._cli; "
            "print(sorted(m for m in ('textual', 'ipywidgets', 'rich', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_the_package_does_not_load_duckdb():
    """Worker processes import the package; DuckDB loads only where a journal is opened."""
    code = "import sys, zart_nb, zart_nb._executors.worker; print('duckdb' in sys.modules, 'asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_package_folder_is_installed():
    import tomllib
    from pathlib import Path

    root = Path(__file__).parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"zart_nb": root / "zart_nb", **{name: root / path for name, path in config["package-dir"].items()}}
    found = {".".join([top, *init.parent.relative_to(folder).parts])
             for top, folder in folders.items() for init in folder.rglob("__init__.py")}
    assert set(config["packages"]) == found


def test_a_worker_process_imports_only_what_a_worker_needs():
    """The package resolves its names lazily: a worker never loads the engine, the journal or the UI,
    nor ``multiprocessing`` (~10 ms of every worker's start: its connection is ``_executors.wire``)."""
    code = ("import json, sys, zart_nb._executors.worker; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('zart_nb', 'multiprocessing')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "zart_nb._executors.worker" in loaded
    assert loaded <= {"zart_nb", "zart_nb._errors", "zart_nb._executors", "zart_nb._executors.base",
                      "zart_nb._executors.capture", "zart_nb._executors.fdcapture", "zart_nb._executors.wire",
                      "zart_nb._executors.worker", "zart_nb._serialization"}


def test_code_in_a_step_can_use_the_light_names_without_loading_the_engine():
    code = ("import sys, zart_nb as zart; zart.context; zart.StepFailed; zart.step; zart.RetryPolicy; "
            "zart.ExecutionStatus; print('zart_nb._engine' in sys.modules, zart.StepFailed.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "zart_nb"]


def _flow_script(tmp_path, then: str):
    """A script running a one-step workflow (execution ``once``, journal ``argv[1]``), printing its
    result, then running ``then``."""
    script = tmp_path / "flow.py"
    script.write_text(
        "import sys\n"
        "import zart_nb as zart\n"
        "@zart.step('double')\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "@zart.workflow('flow')\n"
        "def flow(n):\n"
        "    return double(n)\n"
        "print(zart.run(flow, 21, execution_id='once', journal=sys.argv[1], display=False, workers=1))\n"
        + then)
    return script


# What neither runs a workflow nor answers a finished re-run (~16 ms of its cold start when they loaded).
_NOT_FOR_A_RUN = ("zart_nb._actions", "zart_nb._control_api", "zart_nb._maintenance", "zart_nb._messages",
                  "zart_nb._monitor.protocol", "zart_nb._retention", "zart_nb._stored", "zart_nb._waiting",
                  "zart_nb._durable", "zart_nb._data", "json", "pickletools")


def test_a_finished_rerun_loads_no_control_maintenance_or_data_module(tmp_path):
    script = _flow_script(tmp_path, f"print(sorted(m for m in {_NOT_FOR_A_RUN!r} if m in sys.modules))\n")
    journal = str(tmp_path / "j.duckdb")
    first = subprocess.run([sys.executable, str(script), journal], capture_output=True, text=True, check=True,
                           timeout=120)
    assert first.stdout.splitlines()[0] == "42"
    again = subprocess.run([sys.executable, str(script), journal], capture_output=True, text=True, check=True,
                           timeout=120)
    output, loaded = again.stdout.splitlines()
    assert output == "42"
    assert loaded == "[]"


def test_names_loaded_on_demand_resolve_and_read_as_public():
    code = ("import zart_nb as zart; zart.run; "
            "print(zart.sleep.__module__, zart.compact.__module__, zart.as_completed.__module__, "
            "zart.restart.__module__, zart.garbage_collect.__module__, zart.RemoteExecution.__module__, "
            "zart.StoredValue.__module__, zart.send_event.__module__, zart.sql.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["zart_nb"] * 9


def test_names_loaded_together_read_as_public():
    code = ("import zart_nb as zart; zart.run; "
            "print(zart.StepFailed.__module__, zart.Execution.__module__, zart.run.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["zart_nb", "zart_nb", "zart_nb"]


def test_every_subpackage_is_installed():
    """A package folder missing from pyproject's list installs without it (CI's non-editable install)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {"zart_nb": root / "zart_nb", **{name: root / path
                                               for name, path in config.get("package-dir", {}).items()}}
    found = set()
    for top, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder)
            found.add(".".join([top, *relative.parts]))
    assert found == listed


# What a first run does not need to serve its monitor: the read API's records load once a client reads
# through it, and OpenSSL's hashes never (~15 ms of a fresh process's first run when they loaded).
_NOT_FOR_SERVING = ("zart_nb._records", "zart_nb._journal.reader", "_hashlib")


def test_a_first_run_serves_its_monitor_without_the_read_api_or_openssl(tmp_path):
    script = _flow_script(tmp_path, "print('zart_nb._monitor.server' in sys.modules)\n"
                                    f"print(sorted(m for m in {_NOT_FOR_SERVING!r} if m in sys.modules))\n")
    first = subprocess.run([sys.executable, str(script), str(tmp_path / "j.duckdb")], capture_output=True,
                           text=True, check=True, timeout=120)
    assert first.stdout.splitlines() == ["42", "True", "[]"]
