"""Hostile file names through the real gateway: path traversal, control and bidi characters
end up as a safe last segment of the object key (or a clear 4xx), never outside the job's prefix."""

from __future__ import annotations

import uuid

import httpx
import pytest

from percolate_reading.infra.storage.base import ObjectStore
from tests.harness.documents import make_pdf
from tests.service.gateway.conftest import (  # noqa: F401 - fixtures, imported to be used here
    Tenants,
    gateway,
    settings,
    store,
    tenants,
    tenants_file,
)
from tests.service.gateway.harness import LiveGateway


@pytest.mark.integration
@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("../../../etc/passwd.pdf", "passwd.pdf"),
        ("..\\..\\windows\\win.ini.pdf", "win.ini.pdf"),
        ("re\x07port\r\n\x00.pdf", "report.pdf"),
        ("/abs/path/\u202ereport.pdf", "report.pdf"),
        ("....pdf", "pdf"),
        ("\x1b[31m\x1b[0m", "[31m[0m"),
        ("\x00\x01\x02", "upload"),
    ],
)
async def test_hostile_file_names_through_the_gateway(
    gateway: LiveGateway,  # noqa: F811
    tenants: Tenants,  # noqa: F811
    store: ObjectStore,  # noqa: F811
    raw: str,
    stored: str,
) -> None:
    pdf = make_pdf("named by an attacker")
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {tenants.acme_key}"}
    ) as client:
        # The multipart header carries the name as the client sent it, control bytes and all.
        boundary = uuid.uuid4().hex
        quoted = raw.replace("\\", "\\\\").replace('"', '\\"')
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + pdf
            + f"\r\n--{boundary}--\r\n".encode()
        )
        resp = await client.post(
            "/v1/parse",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        if resp.status_code >= 400:
            # Refusing a name outright is fine too, as long as it is a clear client error.
            assert resp.status_code in (400, 415, 422), resp.text
            return
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["file_name"] == stored
    keys = await store.list_keys("percolate-files", f"{tenants.acme}/{job_id}/")
    assert keys == [f"{tenants.acme}/{job_id}/{stored}"]


@pytest.mark.integration
async def test_thousands_of_form_fields_are_a_clear_client_error(
    gateway: LiveGateway,  # noqa: F811
    tenants: Tenants,  # noqa: F811
    store: ObjectStore,  # noqa: F811
) -> None:
    boundary = uuid.uuid4().hex
    fields = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n'.encode()
        for i in range(5000)
    )
    body = (
        fields
        + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n'.encode()
        + make_pdf("after five thousand fields")
        + f"\r\n--{boundary}--\r\n".encode()
    )
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {tenants.acme_key}"}, timeout=30
    ) as client:
        resp = await client.post(
            "/v1/parse", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        assert 400 <= resp.status_code < 500, resp.text
        assert resp.json()["error"]["message"]
        # The gateway is still serving.
        assert (await client.get("/health")).status_code == 200
    assert await store.list_keys("percolate-files", f"{tenants.acme}/") == []
