"""The API documents itself: security scheme, descriptions and examples everywhere, examples
that match their schemas, Swagger UI and ReDoc served without a CDN, OPTIONS answered."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from percolate_reading.config import Settings
from percolate_reading.gateway.app import create_app
from percolate_reading.gateway.docs import BEARER_SCHEME, ERROR_COMPONENT


@pytest.fixture(scope="module")
def client() -> TestClient:
    # No lifespan: the documentation needs no NATS or storage.
    return TestClient(create_app(Settings()))


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def check_example(spec: dict[str, Any], schema: dict[str, Any], example: Any, where: str) -> None:
    root = {"components": spec["components"], **schema}
    try:
        jsonschema.Draft202012Validator(root).validate(example)
    except jsonschema.ValidationError as exc:
        raise AssertionError(f"{where}: example does not match its schema: {exc.message}") from None


def test_bearer_security_scheme_on_every_v1_operation(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"][BEARER_SCHEME]
    assert scheme == {"type": "http", "scheme": "bearer", "description": scheme["description"]}
    for method, path, op in operations(spec):
        if path.startswith("/v1/"):
            assert op["security"] == [{BEARER_SCHEME: []}], (method, path)
            assert "401" in op["responses"], (method, path)
        else:
            assert "security" not in op, (method, path)


def test_every_operation_parameter_and_field_is_described(spec: dict[str, Any]) -> None:
    missing: list[str] = []
    for method, path, op in operations(spec):
        where = f"{method.upper()} {path}"
        if not op.get("description") or not op.get("summary"):
            missing.append(f"{where}: summary/description (docs.OPERATIONS)")
        for param in op.get("parameters", []):
            if not param.get("description"):
                missing.append(f"{where} parameter {param['name']} (docs.PARAMETERS)")
        form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
        for name, field in form.get("schema", {}).get("properties", {}).items():
            if not field.get("description") or (name != "file" and "example" not in field):
                missing.append(f"{where} form field {name} (docs.FORM_FIELDS)")
    for name, schema in spec["components"]["schemas"].items():
        if "enum" in schema:
            if not schema.get("description"):
                missing.append(f"enum {name} (docs.ENUMS)")
            continue
        for prop, field in schema.get("properties", {}).items():
            if not field.get("description") or "example" not in field:
                missing.append(f"schema {name}.{prop} (docs.SCHEMAS)")
    assert not missing, "undocumented:\n" + "\n".join(missing)


def test_examples_match_their_schemas(spec: dict[str, Any]) -> None:
    checked = 0
    for name, schema in spec["components"]["schemas"].items():
        for prop, field in schema.get("properties", {}).items():
            if "example" in field:
                sub = {k: v for k, v in field.items() if k != "example"}
                check_example(spec, sub, field["example"], f"{name}.{prop}")
                checked += 1
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            content = response.get("content", {}).get("application/json")
            if content and "example" in content:
                check_example(spec, content["schema"], content["example"], f"{method} {path} {status}")
                checked += 1
    assert checked > 60


def test_error_answers_share_one_documented_body(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"][ERROR_COMPONENT]
    assert error["required"] == ["error"]
    seen = set()
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")) and path.startswith("/v1/"):
                content = response["content"]["application/json"]
                assert content["schema"] == {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
                assert content["example"]["error"]["code"], (method, path, status)
                if status in ("429", "503"):
                    assert "Retry-After" in response["headers"], (method, path, status)
                seen.add(status)
    assert {"400", "401", "404", "409", "413", "415", "429", "503"} <= seen


def test_cursor_format_is_documented(spec: dict[str, Any]) -> None:
    assert "next_cursor" in spec["info"]["description"]
    listing = spec["paths"]["/v1/jobs"]["get"]
    cursor = next(p for p in listing["parameters"] if p["name"] == "cursor")
    assert "next_cursor" in cursor["description"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_the_gateway(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    for src in sources:
        assert not src.startswith(("http:", "https:", "//")), f"{page} loads {src} from elsewhere"
        asset = client.get(src)
        assert asset.status_code == 200, src
        assert len(asset.content) > 1000, src
    assert "/openapi.json" in html
    assert "fonts.googleapis" not in html


def test_unknown_docs_asset_is_a_404(client: TestClient) -> None:
    response = client.get("/docs/assets/../../../etc/passwd")
    assert response.status_code == 404
    assert client.get("/docs/assets/other.js").json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/jobs/0192f0c1a2b3c4d5e6f708192a3b4c5d", {"GET", "HEAD", "DELETE", "OPTIONS"}),
        ("/v1/jobs", {"GET", "HEAD", "OPTIONS"}),
        ("/v1/parse", {"POST", "OPTIONS"}),
        ("/v1/jobs/abc/artifacts/tables/1.csv", {"GET", "HEAD", "OPTIONS"}),
        ("/health", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_options_lists_every_allowed_method(client: TestClient, path: str, methods: set[str]) -> None:
    response = client.options(path)
    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) == methods
    # OPTIONS needs no key: it says what exists, nothing about any job.
    assert response.content == b""


def test_405_lists_every_allowed_method(client: TestClient) -> None:
    response = client.put("/v1/jobs/0192f0c1a2b3c4d5e6f708192a3b4c5d")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE", "OPTIONS"}


def test_options_on_an_unknown_path_is_a_404(client: TestClient) -> None:
    assert client.options("/no/such/thing").status_code == 404
