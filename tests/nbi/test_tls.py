"""The gRPC API over TLS, with the API's own certificate (api.tls_cert, api.tls_key)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from daemons.nbi.gen.netd.v1 import subscribers_pb2 as sb
from tests.acs.test_tls import CERT, KEY
from tests.nbi.conftest import NbiServer

NBI_ENV = {"NETD_API_TLS_CERT": str(CERT), "NETD_API_TLS_KEY": str(KEY)}
NBI_RADIUS = False
NBI_TLS_CA = CERT.read_bytes()


async def test_grpc_over_tls_with_the_api_certificate(nbi: NbiServer) -> None:
    s = nbi.stubs("viewer")
    got = await s.subscribers.GetSubscriber(
        sb.GetSubscriberRequest(username="alice"), metadata=s.metadata, timeout=10
    )
    assert got.subscriber.plan == "fiber-100"
    health = health_pb2_grpc.HealthStub(s.channel)
    status = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    # A client that does not use TLS gets nowhere.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{nbi.grpc_port}") as plain:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_pb2_grpc.HealthStub(plain).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
