"""The HTTP API's reference, drawn at build time from the OpenAPI document ``zart serve --http`` serves.

``.. zart-openapi::`` (in an ``{eval-rst}`` block) renders every path, method, parameter, request body and
response of ``zart_nb._serve.http.OPENAPI``, each operation a target of the ``http`` role: a guide writes
``{http}`POST /executions``` and a route renamed in the document fails the build (nitpicky: an unknown target
is a warning, and warnings are errors). The document is also checked against the routes the Starlette app
really has (method and path, converters like ``{execution_id:path}`` read as ``{execution_id}``): a route
renamed in the app and not in the document, or the other way round, is a warning too.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

METHODS = ("get", "put", "post", "patch", "delete")
CONVERTER = re.compile(r"\{(\w+):\w+\}")


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(METHOD, path, operation)`` of every operation, in the document's order."""
    return [(method.upper(), path, operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS]


def app_routes() -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every route of the Starlette app ``zart serve --http`` runs (HEAD left out)."""
    from zart_nb._serve.http import Api

    api = object.__new__(Api)  # the routes' handlers are only made, never called: no server, no journal
    found = set()
    for route in api.app().routes:
        path = CONVERTER.sub(r"{\1}", route.path)
        found |= {(method, path) for method in route.methods if method != "HEAD"}
    return found


def mismatches(document: dict[str, Any], routes: Iterable[tuple[str, str]]) -> list[str]:
    """What the document and the app's routes do not agree on, one line each (empty when they agree)."""
    documented = {(method, path) for method, path, _ in operations(document)}
    served = set(routes)
    return ([f"{m} {p} is served but not in the OpenAPI document" for m, p in sorted(served - documented)]
            + [f"{m} {p} is in the OpenAPI document but not served" for m, p in sorted(documented - served)])


def _schema(schema: dict[str, Any]) -> str:
    """A JSON schema in a few words: ``string``, ``integer (at most 1000)``, ``object`` with its fields."""
    if not schema:
        return "any JSON value"
    kind = schema.get("type", "any JSON value")
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", ()))
        fields = "; ".join(f"``{name}``: {_schema(sub)}{', required' if name in required else ''}"
                           for name, sub in schema["properties"].items())
        return f"an object ({fields})"
    if kind == "object":
        return "a JSON object"
    limits = [f"at most {schema['maximum']}"] if "maximum" in schema else []
    return kind + (f" ({', '.join(limits)})" if limits else "")


def _lines(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f".. http-api:: {method} {path}", "", f"   {operation.get('summary', '')}.", ""]
    groups: dict[str, list[str]] = {}
    for parameter in operation.get("parameters", []):
        where = {"path": "Path parameters", "query": "Query parameters", "header": "Headers"}[parameter["in"]]
        required = ", required" if parameter.get("required") else ""
        groups.setdefault(where, []).append(f"``{parameter['name']}``: {_schema(parameter.get('schema', {}))}"
                                            f"{required}")
    for where, items in groups.items():
        lines += [f"   :{where}:"] + [f"      - {item}" for item in items]
    body = operation.get("requestBody")
    if body is not None:
        for media, content in body.get("content", {}).items():
            required = " (required)" if body.get("required") else ""
            lines.append(f"   :Request body{required}: ``{media}``, {_schema(content.get('schema', {}))}")
    lines.append("   :Responses:")
    for code, response in operation.get("responses", {}).items():
        media = ", ".join(f"``{m}`` {_schema(c.get('schema', {}))}" for m, c in response.get("content", {}).items())
        lines.append(f"      - ``{code}`` {response.get('description', '')}" + (f": {media}" if media else ""))
    return lines + [""]


class OpenApiDirective(SphinxDirective):
    """Every operation of the OpenAPI document (``zart_nb._serve.http.OPENAPI``), each an ``http`` target."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from zart_nb._serve import http
        from zart_nb._serve.http import OPENAPI

        self.env.note_dependency(http.__file__)  # a changed document draws the page again
        try:
            routes = app_routes()
        except ImportError as exc:  # starlette missing: the docs extra installs it
            logger.warning("the HTTP API's routes cannot be checked against its OpenAPI document (%s): "
                           "pip install '.[docs]'", exc, location=self.get_location())
        else:
            for problem in mismatches(OPENAPI, routes):
                logger.warning("zart serve --http: %s", problem, location=self.get_location())
        info = OPENAPI["info"]
        schemes = ", ".join(f"{name} ({scheme.get('scheme', scheme['type'])})"
                            for name, scheme in OPENAPI["components"]["securitySchemes"].items())
        text = [f"**{info['title']}**, OpenAPI {OPENAPI['openapi']}, API version {info['version']}. "
                f"{info['description']} Security: {schemes}.", ""]
        for method, path, operation in operations(OPENAPI):
            text += _lines(method, path, operation)
        text += [".. rubric:: The document", "", ".. code-block:: json", ""]
        text += ["   " + line for line in json.dumps(OPENAPI, indent=2).splitlines()] + [""]
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(text, source="zart_nb._serve.http.OPENAPI"), container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_object_type("http-api", "http", indextemplate="pair: %s; HTTP API")
    app.add_directive("zart-openapi", OpenApiDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
