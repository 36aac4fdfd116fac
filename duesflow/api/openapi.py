"""The OpenAPI 3 document, generated from the routes and the metadata their ``endpoint`` decorators carry."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from .. import schemas
from ..schemas import shared
from .framework import EndpointDoc

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>\w+)>")


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for match in _CONVERTER.finditer(rule):
        kind = {"int": "integer"}.get(match.group("conv") or "", "string")
        params.append({"name": match.group("name"), "in": "path", "required": True, "schema": {"type": kind}})
    return _CONVERTER.sub(r"{\g<name>}", rule), params


def endpoint_docs(app: Flask) -> list[tuple[str, str, EndpointDoc]]:
    """(rule, method, doc) for every documented view of ``app``."""
    found = []
    for rule in app.url_map.iter_rules():
        doc = getattr(app.view_functions[rule.endpoint], "api_doc", None)
        if doc is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.rule, method, doc))
    return found


def _body_required(schema: type[Schema]) -> bool:
    """A body is required when its schema requires a field, or refuses an empty body (``requires_body``)."""
    return getattr(schema, "requires_body", False) or any(field.required for field in shared(schema).fields.values())


def build_document(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="duesflow",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "自愿一次性多交党费（1000元及以上）代收、逐级转交与纪念收据。"},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=schemas.ErrorOut)
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, doc in endpoint_docs(app):
        path, params = _path(rule)
        operation: dict[str, Any] = {"summary": doc.summary, "parameters": [*params, *doc.headers],
                                     "responses": {}}
        if doc.query is not None:
            operation["parameters"].append({"in": "query", "schema": doc.query})
        if doc.body is not None:
            operation["requestBody"] = {"required": _body_required(doc.body),
                                        "content": {"application/json": {"schema": doc.body}}}
        if doc.body_type is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {doc.body_type: {"schema": {"type": "string", "format": "binary"}}}}
        if doc.auth:
            operation["security"] = [{"bearer": []}]
        for status, codes in sorted(doc.statuses().items()):
            if status == doc.status:
                response: dict[str, Any] = {"description": "OK" if status < 300 else "error"}
                if doc.content_type != "application/json":
                    response["content"] = {doc.content_type: {"schema": {"type": "string", "format": "binary"}}}
                elif doc.response is not None:
                    response["content"] = {"application/json": {"schema": doc.response}}
                elif status != 204:
                    response["content"] = {"application/json": {"schema": {"type": "object"}}}
                for media_type in doc.alternatives:
                    response.setdefault("content", {})[media_type] = {"schema": {"type": "string", "format": "binary"}}
            else:
                response = {
                    "description": ", ".join(codes),
                    "content": {"application/json": {"schema": "Error"}},
                }
            operation["responses"][str(status)] = response
        if doc.uploads:
            operation["requestBody"]["content"]["multipart/form-data"] = {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary", "description": doc.uploads}},
            }}
        if path == "/healthz":
            operation["responses"]["503"] = {"description": "database unavailable",
                                             "content": {"application/json": {"schema": doc.response}}}
        paths.setdefault(path, {})[method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
