"""The API's own documentation: the OpenAPI document, Swagger UI at /docs, ReDoc at /redoc.

FastAPI generates the schema from the routes; `document_openapi` (pure: schema in, schema
out) adds what generation cannot know: the bearer security scheme (so Swagger's "Authorize"
button works), a description and an example for every operation, parameter, form field and
model property, the shared error body as one component with an example per status, and the
cursor format. The text lives here, in one table per kind, so route modules stay about
behaviour; a test fails when a new field or operation has no entry.

The Swagger UI and ReDoc scripts come from the `fastapi-offline` package (installed through
the lock) and are served by the gateway itself: the pages work with no network access.

`AllowedMethods` answers `OPTIONS` with the methods a path allows (and puts the full list in
the `Allow` header of a 405), which FastAPI does not do for paths served by several routes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from percolate_reading.gateway.api_errors import ERROR_SCHEMA, ApiError
from percolate_reading.parse.request import FIELD_HELP

BEARER_SCHEME = "bearerAuth"
ERROR_COMPONENT = "Error"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"


def _asset_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}

JOB_ID = "0192f0c1a2b3c4d5e6f708192a3b4c5d"
CURSOR = "tenant.acme.8254993371234.0192f0c1a2b3c4d5e6f708192a3b4c5d"
BASE = "http://127.0.0.1:8001"

API_DESCRIPTION = f"""\
Upload documents (PDF, XLSX, audio, images) for parsing; follow each job; download its
artifacts (Markdown, tables as CSV, RAG chunks as JSON lines, metadata); read the tenant's
whole parsed corpus in one call.

**Authentication.** Every `/v1/` call needs `Authorization: Bearer <api key>`; the key
names the tenant, and a job is visible only to its tenant. Click *Authorize* and paste the
key to try the calls here. `percolate-reading serve` prints a development key when it starts.

**Errors.** Every error answer has the same body, `{{"error": {{"code": ..., "message": ...}}}}`
(schema `{ERROR_COMPONENT}`): `code` is stable and meant for programs, `message` for people.
`429` and `503` carry `Retry-After` (seconds): wait that long, then send the same request again.

**Listing and cursors.** `GET /v1/jobs` answers newest first, one page at a time. When more
jobs follow, the answer's `next_cursor` is an opaque string: pass it back as `cursor` to get
the next page; `null` means this was the last page. A cursor belongs to the tenant that got
it; any other string is refused with `400 invalid_cursor`.

**Webhooks.** With `callback_url`, the finished job is POSTed there as a
[Standard Webhooks](https://www.standardwebhooks.com/) message (`webhook-id`,
`webhook-timestamp`, `webhook-signature`); `percolate_reading.client.verify_webhook` checks it.
"""


@dataclass(frozen=True)
class OperationDoc:
    summary: str
    description: str
    # status -> example body of a JSON success answer
    examples: dict[str, Any] = field(default_factory=dict)


JOB_EXAMPLE: dict[str, Any] = {
    "job_id": JOB_ID,
    "tenant_id": "acme",
    "file_name": "annual-report.pdf",
    "file_type": "pdf",
    "size_bytes": 482133,
    "tier": "small",
    "status": "succeeded",
    "attempts": 1,
    "created_at": "2026-11-30T17:02:11.204000Z",
    "started_at": "2026-11-30T17:02:11.390000Z",
    "finished_at": "2026-11-30T17:02:12.015000Z",
    "updated_at": "2026-11-30T17:02:12.015000Z",
    "timings": {"download": 0.004, "parse": 0.41, "upload": 0.02},
    "error": None,
    "artifacts": ["structured.md", "tables/1.csv", "metadata.json", "chunks.jsonl"],
    "callback_url": None,
    "webhook_id": None,
    "parts": [],
    "parts_done": [],
    "status_url": f"{BASE}/v1/jobs/{JOB_ID}",
    "artifact_urls": {"structured.md": f"{BASE}/v1/jobs/{JOB_ID}/artifacts/structured.md"},
}

CONTEXT_EXAMPLE: dict[str, Any] = {
    "version": 1,
    "tenant_id": "acme",
    "document_count": 1,
    "chunk_count": 12,
    "documents": [
        {
            "job_id": JOB_ID,
            "tenant_id": "acme",
            "file_name": "annual-report.pdf",
            "type": "pdf",
            "artifacts": {"structured.md": f"s3://percolate-artifacts/acme/{JOB_ID}/structured.md"},
            "metadata": {"page_count": 3},
            "chunk_count": 12,
            "chunks_uri": f"s3://percolate-context/acme/chunks/{JOB_ID}.jsonl",
            "updated_at": "2026-11-30T17:02:12.015000+00:00",
        }
    ],
}

OPERATIONS: dict[tuple[str, str], OperationDoc] = {
    ("post", "/v1/parse"): OperationDoc(
        "Submit a document",
        "Streams the upload to storage and queues a parse job. The `202` comes only once the job "
        "is durably queued; `Location` and `status_url` point at the job. The type is sniffed "
        "from the content (PDF, XLSX, audio, image), not from the name.",
        {"202": {"job_id": JOB_ID, "status": "queued", "status_url": f"{BASE}/v1/jobs/{JOB_ID}"}},
    ),
    ("get", "/v1/jobs/{job_id}"): OperationDoc(
        "Get a job",
        "The job's status, attempts, timings, error (when it failed) and artifact list. Poll it "
        "until `status` is `succeeded`, `failed` or `cancelled`, or use a `callback_url`.",
        {"200": JOB_EXAMPLE},
    ),
    ("delete", "/v1/jobs/{job_id}"): OperationDoc(
        "Cancel a queued job",
        "Only a `queued` job can be cancelled (`409 not_cancellable` otherwise); its upload is "
        "deleted and a worker that receives it skips it.",
        {"200": {**JOB_EXAMPLE, "status": "cancelled", "artifacts": [], "artifact_urls": {}}},
    ),
    ("get", "/v1/jobs"): OperationDoc(
        "List jobs",
        "This tenant's jobs, newest first, one page at a time: pass `next_cursor` back as "
        "`cursor` for the next page (`null`: no more pages).",
        {"200": {"jobs": [JOB_EXAMPLE], "next_cursor": CURSOR}},
    ),
    ("get", "/v1/jobs/{job_id}/artifacts/{path}"): OperationDoc(
        "Download an artifact",
        "One artifact of a finished job, by the path the job's `artifacts` lists (for example "
        "`structured.md`, `tables/1.csv`, `chunks.jsonl`, `metadata.json`). Sent as an attachment.",
    ),
    ("get", "/v1/context"): OperationDoc(
        "Read the tenant's corpus",
        "Every parsed document of the tenant, newest first, with artifact URIs, metadata and "
        "chunk counts, in one read; with `include_chunks=true` every chunk inline too.",
        {"200": CONTEXT_EXAMPLE},
    ),
    ("get", "/health"): OperationDoc(
        "Liveness",
        "The process answers; says nothing about its dependencies. No key needed.",
        {"200": {"status": "ok"}},
    ),
    ("get", "/ready"): OperationDoc(
        "Readiness",
        "`200` when NATS, storage and the background tasks are fine; `503` with each check's "
        "state otherwise. No key needed.",
        {"200": {"status": "ready", "checks": {"nats": "ok", "storage": "ok", "background_tasks": "ok"}}},
    ),
    ("get", "/metrics"): OperationDoc(
        "Prometheus metrics", "Counters and histograms in the Prometheus text format. No key needed."
    ),
}

# (method, path, parameter name) -> (description, example; None: the description shows one)
PARAMETERS: dict[tuple[str, str, str], tuple[str, Any]] = {
    ("get", "/v1/jobs/{job_id}", "job_id"): ("The id `POST /v1/parse` answered with.", JOB_ID),
    ("delete", "/v1/jobs/{job_id}", "job_id"): ("The id of the job to cancel.", JOB_ID),
    ("get", "/v1/jobs/{job_id}/artifacts/{path}", "job_id"): ("The job's id.", JOB_ID),
    ("get", "/v1/jobs/{job_id}/artifacts/{path}", "path"): (
        "An artifact path exactly as the job's `artifacts` lists it.",
        "tables/1.csv",
    ),
    ("get", "/v1/jobs", "status"): ("Only jobs in this state, e.g. `succeeded`.", None),
    ("get", "/v1/jobs", "limit"): ("Jobs per page (1-500).", 50),
    # No prefilled example: "Try it out" would send a cursor this tenant never got (a 400).
    ("get", "/v1/jobs", "cursor"): (
        "Opaque: the `next_cursor` of the previous page, unchanged (e.g. "
        f"`{CURSOR}`). Omit for the first page.",
        None,
    ),
    ("get", "/v1/context", "include_chunks"): ("Inline every document's chunks.", False),
}

# multipart form fields of POST /v1/parse -> (description, example)
REQUEST_FIELD_EXAMPLES = {
    "outputs": "markdown,elements,chunks",
    "pages": "2-5",
    "ocr": "auto",
    "ocr_languages": "en,de",
    "table_mode": "accurate",
    "include_images": "false",
    "chunk_strategy": "heading",
    "chunk_size": "2000",
    "chunk_overlap": "200",
}
FORM_FIELDS: dict[str, tuple[str, Any]] = {
    "file": (
        "The document: PDF, Office (DOCX, PPTX, XLSX, XLS; DOC and PPT where LibreOffice is installed), "
        "OpenDocument, EPUB, RTF, HTML, CSV/TSV, text, Markdown, e-mail (EML, MSG), images or audio.",
        "",
    ),
    "callback_url": (
        "An http(s) URL that receives a signed Standard Webhooks POST when the job finishes. "
        "Private and loopback addresses are refused unless the operator allows them.",
        "https://example.com/hooks/percolate",
    ),
    "tier": (
        "Force a worker pool (default: chosen from the type and size). Must be enabled for the tenant.",
        "small",
    ),
    "password": ("Password of an encrypted PDF.", "s3cret"),
    "language": (
        "Language hint for OCR and speech (ISO 639-1, e.g. `en`, `de`). For a recording that "
        "switches language: the languages to expect (`en,de`) or `multi`; each transcript "
        "segment's language is then in `segment_languages`.",
        "en",
    ),
    "ocr_enabled": ("`false` skips OCR of images and scanned pages.", "true"),
    # The per-request options: described once in parse/request.py (FIELD_HELP).
    **{name: (FIELD_HELP[name], example) for name, example in REQUEST_FIELD_EXAMPLES.items()},
}

# component schema -> property -> (description, example)
SCHEMAS: dict[str, dict[str, tuple[str, Any]]] = {
    "Accepted": {
        "job_id": ("The new job's id (32 hex characters, sorts by creation time).", JOB_ID),
        "status": ("Always `queued` here.", "queued"),
        "status_url": ("Where to poll the job (also in the `Location` header).", f"{BASE}/v1/jobs/{JOB_ID}"),
    },
    "JobView": {
        "job_id": ("The job's id.", JOB_ID),
        "tenant_id": ("The tenant that submitted it (the API key's tenant).", "acme"),
        "file_name": ("The uploaded file's name, made safe.", "annual-report.pdf"),
        "file_type": ("The type sniffed from the content: pdf, xlsx, audio or image.", "pdf"),
        "size_bytes": ("Size of the upload in bytes.", 482133),
        "tier": ("The worker pool the job was routed to.", "small"),
        "status": ("queued -> running -> succeeded | failed; or cancelled while queued.", "succeeded"),
        "attempts": ("How many times a worker started it (a retry after a crash adds one).", 1),
        "created_at": ("When the upload was accepted (UTC).", "2026-11-30T17:02:11.204000Z"),
        "started_at": ("When a worker last started it; null while queued.", "2026-11-30T17:02:11.390000Z"),
        "finished_at": ("When it reached a final state; null before.", "2026-11-30T17:02:12.015000Z"),
        "updated_at": ("Last change of the record.", "2026-11-30T17:02:12.015000Z"),
        "timings": ("Seconds per stage of the last attempt.", {"parse": 0.41, "upload": 0.02}),
        "error": ("Why it failed; null unless status is failed.", None),
        "artifacts": ("Paths of the job's artifacts, for the artifact download.", ["structured.md"]),
        "callback_url": ("The webhook URL given at submission, if any.", None),
        "webhook_id": ("The `webhook-id` of the completion webhook, once sent.", None),
        "parts": (
            "A large scan split into page ranges that the pool's workers parse in parallel: "
            "the ranges (`first-last`, in page order). Empty when the job is parsed whole.",
            [],
        ),
        "parts_done": ("The page ranges parsed so far (a split job's progress).", []),
        "status_url": ("This job's URL.", f"{BASE}/v1/jobs/{JOB_ID}"),
        "artifact_urls": (
            "Download URL of each artifact.",
            {"structured.md": f"{BASE}/v1/jobs/{JOB_ID}/artifacts/structured.md"},
        ),
    },
    "JobErrorInfo": {
        "code": ("Stable machine-readable reason.", "encrypted"),
        "message": ("What went wrong, for people.", "the PDF is encrypted: pass its password"),
        "permanent": ("True when retrying the same file cannot succeed.", True),
    },
    "JobList": {
        "jobs": ("One page of jobs, newest first.", [JOB_EXAMPLE]),
        "next_cursor": ("Pass as `cursor` for the next page; null on the last page.", CURSOR),
    },
    "Context": {
        "tenant_id": ("The tenant.", "acme"),
        "document_count": ("How many documents are listed.", 1),
        "chunk_count": ("Chunks over all documents.", 12),
        "documents": ("One entry per parsed document, newest first.", CONTEXT_EXAMPLE["documents"]),
    },
    "ContextDocument": {
        "job_id": ("The job that parsed it.", JOB_ID),
        "tenant_id": ("The tenant.", "acme"),
        "file_name": ("The uploaded file's name.", "annual-report.pdf"),
        "artifacts": (
            "Object-store URI of each artifact.",
            {"structured.md": f"s3://percolate-artifacts/acme/{JOB_ID}/structured.md"},
        ),
        "chunk_count": ("Number of chunks.", 12),
        "chunks": ("The chunks themselves, with `include_chunks=true` only.", None),
    },
    ERROR_COMPONENT: {
        "error": ("What went wrong.", {"code": "job_not_found", "message": f"no job '{JOB_ID}'"}),
    },
    "ErrorDetail": {
        "code": ("Stable machine-readable code.", "job_not_found"),
        "message": ("Human-readable explanation.", f"no job '{JOB_ID}'"),
    },
}

ENUMS: dict[str, str] = {
    "JobStatus": "A job's state: queued, running, then succeeded or failed; cancelled while queued.",
    "Tier": "Worker pool: small (most documents), large (big files), gpu (audio and other GPU types).",
}

ERROR_EXAMPLES: dict[str, tuple[str, str]] = {
    "400": ("bad_request", "callback_url must be an http(s) URL"),
    "401": ("unauthorized", "send 'Authorization: Bearer <api key>'"),
    "404": ("job_not_found", f"no job '{JOB_ID}'"),
    "408": ("upload_timeout", "the upload stalled"),
    "409": ("not_cancellable", f"job '{JOB_ID}' is running; only queued jobs can be cancelled"),
    "413": ("too_large", "the upload is larger than this tenant's 104857600 bytes"),
    "415": ("unsupported_type", "the content is not a PDF, XLSX, audio or image file"),
    "422": ("invalid_request", "query.limit: Input should be less than or equal to 500"),
    "429": ("too_many_jobs", "100 jobs are queued or running; this tenant may have 100"),
    "503": ("unavailable", "the job store is unavailable"),
}

RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before sending the same request again.",
    "schema": {"type": "integer", "example": 5},
}


def _error_component() -> dict[str, Any]:
    detail = copy.deepcopy(ERROR_SCHEMA["properties"]["error"])
    detail["description"] = "The code and message of the error."
    return {
        ERROR_COMPONENT: {
            "type": "object",
            "description": "The body of every error answer.",
            "required": ["error"],
            "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
        },
        "ErrorDetail": {**detail, "title": "ErrorDetail"},
    }


def _document_properties(name: str, schema: dict[str, Any]) -> None:
    docs = SCHEMAS.get(name, {})
    for prop, sub in schema.get("properties", {}).items():
        if prop in docs:
            description, example = docs[prop]
            sub.setdefault("description", description)
            sub.setdefault("example", example)


def _document_responses(op: dict[str, Any], doc: OperationDoc | None) -> None:
    for status, response in op.get("responses", {}).items():
        content = response.get("content", {})
        json_content = content.get("application/json")
        if json_content is None:
            continue
        if json_content.get("schema") == ERROR_SCHEMA:
            code, message = ERROR_EXAMPLES.get(status, ("error", "what went wrong"))
            json_content["schema"] = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
            json_content.setdefault("example", {"error": {"code": code, "message": message}})
            if status in ("429", "503"):
                response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER
        elif doc is not None and status in doc.examples:
            json_content.setdefault("example", doc.examples[status])


def document_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """The generated schema with security, descriptions, examples and the error component."""
    spec = copy.deepcopy(spec)
    spec["info"]["description"] = API_DESCRIPTION
    components = spec.setdefault("components", {})
    components["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "The tenant's API key: `Authorization: Bearer <api key>`.",
        }
    }
    schemas = components.setdefault("schemas", {})
    schemas.update(_error_component())
    for name, schema in schemas.items():
        if name in ENUMS:
            schema.setdefault("description", ENUMS[name])
        _document_properties(name, schema)
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            doc = OPERATIONS.get((method, path))
            if doc is not None:
                op["summary"] = doc.summary
                op["description"] = doc.description
            if path.startswith("/v1/"):
                op["security"] = [{BEARER_SCHEME: []}]
            for param in op.get("parameters", []):
                entry = PARAMETERS.get((method, path, param["name"]))
                if entry is not None:
                    param.setdefault("description", entry[0])
                    if entry[1] is not None:
                        param.setdefault("example", entry[1])
            form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
            for prop, sub in form.get("schema", {}).get("properties", {}).items():
                if prop in FORM_FIELDS:
                    sub.setdefault("description", FORM_FIELDS[prop][0])
                    if prop != "file":
                        sub.setdefault("example", FORM_FIELDS[prop][1])
            _document_responses(op, doc)
    return spec


def _openapi_builder(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            generated = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=[
                    {"name": "jobs", "description": "Submit documents and follow their jobs."},
                    {"name": "context", "description": "The tenant's parsed corpus."},
                    {"name": "health", "description": "Probes and metrics (no key needed)."},
                ],
            )
            app.openapi_schema = document_openapi(generated)
        return app.openapi_schema

    return build


def install_docs(app: FastAPI) -> None:
    """Serve /openapi.json (documented), /docs, /redoc and their assets; answer OPTIONS.

    The app must be created with `docs_url=None, redoc_url=None` (FastAPI's own pages load
    their scripts from a CDN)."""
    app.openapi = _openapi_builder(app)  # type: ignore[method-assign]
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # The key pasted into "Authorize" survives a reload of the page.
            swagger_ui_parameters={"persistAuthorization": True, "tryItOutEnabled": True},
        )

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        media_type = ASSET_TYPES.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", f"no documentation asset {name!r}")
        return FileResponse(
            _asset_dir() / name, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
        )

    app.add_middleware(AllowedMethods)


PROBED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> set[str]:
    """Every method some route fully matches at this path (with HEAD for GET, and OPTIONS).

    Asked of the routes themselves, one method at a time: included routers wrap their routes,
    so the route objects' `methods` are not all visible from here."""
    methods = {
        method
        for method in PROBED_METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    }
    if methods:
        methods.add("OPTIONS")
        if "GET" in methods:
            methods.add("HEAD")
    return methods


class AllowedMethods:
    """`OPTIONS <path>` -> 204 with `Allow: <methods>`; a 405 lists them all too. Pure ASGI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routes: list[BaseRoute] = scope["app"].router.routes
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(routes, scope)
            if methods:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", ", ".join(sorted(methods)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = ", ".join(sorted(allowed_methods(routes, scope))).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", allow)]}
            await send(message)

        await self.app(scope, receive, send_with_allow)
