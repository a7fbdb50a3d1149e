"""The emulator's server (`mesh_emulator.server.LocalEmulator`): loopback only, and a reset
that forgets every backend."""

from __future__ import annotations

import gc
import weakref

import pytest

from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import (
    ClientFactory,
    HubResources,
    build_hub,
)

REGION = "us-east-1"


@pytest.fixture
def hub(aws: ClientFactory) -> HubResources:
    return build_hub(aws, REGION, workload_vpcs=1)


def test_emulator_listens_on_loopback(emulator: LocalEmulator) -> None:
    assert emulator.endpoint_url.startswith("http://127.0.0.1:")


def test_a_reset_forgets_everything_and_keeps_no_backend_alive(
    emulator: LocalEmulator, aws: ClientFactory, hub: HubResources
) -> None:
    """moto's caches kept every reset backend (and so every test's state) for the session."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends
    from moto.route53resolver.models import route53resolver_backends

    account = DEFAULT_ACCOUNT_ID
    before = [
        weakref.ref(ec2_backends[account]),
        weakref.ref(ec2_backends[account][REGION]),
        weakref.ref(route53resolver_backends[account][REGION]),
    ]

    emulator.reset()
    gc.collect()

    assert [ref() for ref in before] == [None, None, None]
    vpcs = aws("ec2", REGION).describe_vpcs()["Vpcs"]
    assert hub.vpc_id not in {vpc["VpcId"] for vpc in vpcs}
    assert aws("route53resolver", REGION).list_resolver_endpoints()["ResolverEndpoints"] == []
