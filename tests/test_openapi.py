"""GET /api/v1/openapi.json: a valid OpenAPI 3 document of every route, documenting the statuses the service
really answers with (SPEC §7)."""

from __future__ import annotations

import re

import pytest
from conftest import observed_statuses
from flask import Flask
from openapi_spec_validator import validate
from sqlalchemy.exc import OperationalError

from duesflow.extensions import db

IGNORED_METHODS = {"HEAD", "OPTIONS"}
_CONVERTER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?(\w+)>")


def openapi_path(rule: str) -> str:
    """``/payments/<int:payment_id>`` → ``/payments/{payment_id}``."""
    return _CONVERTER.sub(r"{\1}", rule)


def documented(rule: str) -> bool:
    return rule.startswith("/api/v1/") or rule == "/healthz"


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json


def operations(document: dict):  # noqa: ANN201 - yields (path, method, operation)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def test_the_document_is_valid_openapi_3(document):
    validate(document)

    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_every_route_appears_with_each_of_its_methods_and_nothing_else(app: Flask, document):
    expected = {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules() if documented(rule.rule)
        for method in (rule.methods or set()) - IGNORED_METHODS
    }

    listed = {(path, method) for path, method, _ in operations(document)}

    assert listed == expected
    assert ("/healthz", "get") in listed and ("/api/v1/payments", "post") in listed


def test_path_parameters_are_documented_with_their_types(document):
    for path, method, operation in operations(document):
        declared = {p["name"]: p["schema"]["type"] for p in operation["parameters"] if p["in"] == "path"}
        assert set(declared) == set(re.findall(r"{(\w+)}", path)), (path, method)
        ids = [kind for name, kind in declared.items() if name.endswith("_id")]
        assert all(kind == "integer" for kind in ids), (path, method)


def test_recording_a_payment_documents_the_idempotency_key_header(document):
    parameters = document["paths"]["/api/v1/payments"]["post"]["parameters"]

    header = next(p for p in parameters if p["in"] == "header")

    assert header["name"] == "Idempotency-Key" and header["required"] is False
    assert header["schema"]["type"] == "string"
    assert "409" in document["paths"]["/api/v1/payments"]["post"]["responses"]


def test_every_operation_with_a_body_documents_malformed_too_large_and_invalid_bodies(document):
    with_body = [(path, method, op) for path, method, op in operations(document) if "requestBody" in op]

    assert with_body
    for path, method, operation in with_body:
        # a body that is a file (a PDF to verify) cannot be malformed JSON: 413 and 422 only
        malformed = {"400"} if "application/json" in operation["requestBody"]["content"] else set()
        assert {*malformed, "413", "422"} <= set(operation["responses"]), (path, method)


def test_every_authenticated_operation_documents_401_and_the_bearer_scheme(document):
    public = {("/api/v1/auth/token", "post"), ("/api/v1/openapi.json", "get"), ("/healthz", "get"),
              ("/api/v1/receipts/{number}/verify", "get"), ("/api/v1/receipts/verify-document", "post"),
              ("/api/v1/receipts/signing-certificate", "get")}

    for path, method, operation in operations(document):
        if (path, method) in public:
            assert "security" not in operation, (path, method)
        else:
            assert operation["security"] == [{"bearer": []}], (path, method)
            assert "401" in operation["responses"], (path, method)


def test_error_responses_use_the_error_schema(document):
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400 and (path, status) != ("/healthz", "503"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


@pytest.mark.payment_counts_unchecked("the database is made to refuse every statement until the test ends")
def test_healthz_answers_503_when_the_database_does_not(client, monkeypatch, document):
    def database_down(*_args, **_kwargs):  # noqa: ANN202
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(db.session, "execute", database_down)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json == {"status": "unavailable"}
    assert set(document["paths"]["/healthz"]["get"]["responses"]) == {"200", "503"}


def test_healthz_answers_200_when_the_database_does(client):
    response = client.get("/healthz")

    assert response.status_code == 200 and response.json == {"status": "ok"}


@pytest.mark.last
def test_every_status_the_service_answered_with_in_this_session_is_documented(document, pytestconfig):
    observed = observed_statuses(pytestconfig)  # under pytest-xdist, every worker's
    responses = {
        (path, method.upper()): set(operation["responses"])
        for path, method, operation in operations(document)
    }

    undocumented = sorted(
        (rule, method, status)
        for rule, method, status in observed
        if documented(rule) and method not in IGNORED_METHODS
        and str(status) not in responses[(openapi_path(rule), method)]
    )

    assert any(status >= 400 for _, _, status in observed)
    assert not undocumented, "answered but not documented: " + ", ".join(map(str, undocumented))


def test_a_body_is_required_exactly_where_the_endpoint_cannot_do_without_one(document):
    paths = document["paths"]

    assert paths["/api/v1/payments"]["post"]["requestBody"]["required"] is True
    assert paths["/api/v1/payments/{payment_id}"]["patch"]["requestBody"]["required"] is True
    assert paths["/api/v1/auth/token"]["post"]["requestBody"]["required"] is True
    assert paths["/api/v1/payments/{payment_id}/{action}"]["post"]["requestBody"]["required"] is False
