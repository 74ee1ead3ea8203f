"""The benchmarks' upload client: aiohttp with a multipart body encoded once per file.

The client shares the machine's cores with what it measures, so it must cost little. httpx
(which the tests and `percolate-reading submit` use) spent about 6.5 ms of CPU per 100 KiB
POST on this machine, 40 times aiohttp's 0.17 ms: at 64 uploads in flight it, not the
gateway, was the bottleneck, and the gateway's p50 latency measured mostly the client.
"""

from __future__ import annotations

import os

import aiohttp


def multipart_body(file_name: str, data: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/form-data upload: the fields, then the file."""
    boundary = f"----percolate-bench-{os.urandom(8).hex()}"
    parts: list[bytes] = []
    for name, value in (fields or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    parts.append(data)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def session(base_url: str, api_key: str, connections: int) -> aiohttp.ClientSession:
    """A keep-alive session with up to `connections` connections to the gateway."""
    return aiohttp.ClientSession(
        base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=120),
    )


async def upload(
    client: aiohttp.ClientSession, body: bytes, content_type: str, path: str = "/v1/parse"
) -> str:
    """POST one encoded upload; returns the job id of the 202 (raises on any other answer)."""
    async with client.post(path, data=body, headers={"Content-Type": content_type}) as resp:
        text = await resp.text()
        if resp.status != 202:
            raise RuntimeError(f"upload answered {resp.status}: {text}")
        data = await resp.json(content_type=None)
        job_id: str = data["job_id"]
        return job_id
