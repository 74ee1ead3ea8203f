"""The fixtures themselves: each server really answers its protocol."""

from __future__ import annotations

import httpx
import nats
from aiobotocore.session import get_session

from tests.servers import NatsServer, SeaweedS3


async def test_nats_server_has_jetstream(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().account_info()
        assert info.limits is not None
    finally:
        await nc.close()
    varz = httpx.get(f"{nats_server.monitor_url}/varz").json()
    assert varz["jetstream"]["config"]["store_dir"].startswith(str(nats_server.store_dir))


async def test_seaweed_s3_round_trip(seaweed_s3: SeaweedS3) -> None:
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=seaweed_s3.endpoint,
        aws_access_key_id=seaweed_s3.access_key,
        aws_secret_access_key=seaweed_s3.secret_key,
        region_name="us-east-1",
    ) as s3:
        await s3.create_bucket(Bucket="fixture-check")
        await s3.put_object(Bucket="fixture-check", Key="t/a.txt", Body=b"round trip")
        obj = await s3.get_object(Bucket="fixture-check", Key="t/a.txt")
        assert await obj["Body"].read() == b"round trip"
