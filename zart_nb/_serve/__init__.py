"""``zart serve`` and what it serves: recurring executions (``recurring``), the serve loop over sources of
due work (``loop``) and the HTTP API (``http``).

The only importer of the ``serve`` extra's libraries (croniter, starlette, uvicorn), each loaded when first
needed: ``tests/test_imports.py`` holds it. The HTTP side never unpickles: it reads through the typed read
API and takes JSON.
"""
