"""The package surface: a tested __all__, and no UI library imported by the engine."""
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
