"""The clients `Aws` makes for one endpoint (a service in a Region) share one connection pool,
whatever their account (`_SharedClientParts.share_http`), through the emulator over HTTP, whose
connections stay open between calls as AWS's do.

An SDK client keeps its connections open for its next calls: one socket (file descriptor) per
(account, service, Region) client made the process run out of Lambda's 1,024 at about 40
member accounts over 6 hub Regions. Shared, the open sockets are bounded by the endpoints and
`POOL_CONNECTIONS`, not by the accounts."""

from __future__ import annotations

import gc
import threading
from typing import Any

import boto3
import botocore.exceptions
import pytest

from mesh_emulator.server import LocalEmulator
from resolver_mesh.aws import session
from resolver_mesh.aws.session import POOL_CONNECTIONS, Aws, pool_connections
from resolver_mesh.config import Settings
from resolver_mesh.local.topology import ClientFactory
from resolver_mesh.models import AccountAccess

REGION = "us-east-1"
ACCOUNTS = 30  # more than a pool's connections: each would have had a socket of its own


SIX_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ca-central-1")


def home(mesh_regions: tuple[str, ...] = ()) -> Aws:
    settings = Settings(home_region=REGION, mesh_regions=mesh_regions)
    return Aws(settings, boto3.session.Session())


def members(aws: Aws, count: int) -> list[Aws]:
    return [
        aws.member(
            AccountAccess(
                account_id=f"{300000000000 + index:012d}",
                role_arn=f"arn:aws:iam::{300000000000 + index:012d}:role/resolver-mesh-member",
            )
        )
        for index in range(count)
    ]


def session_of(client: Any) -> Any:
    return client._endpoint.http_session


@pytest.mark.parametrize(("mesh_regions", "most"), [((), POOL_CONNECTIONS), (SIX_REGIONS, 16)])
def test_the_accounts_clients_of_one_endpoint_share_one_pool(
    aws: ClientFactory, emulator: LocalEmulator, mesh_regions: tuple[str, ...], most: int
) -> None:
    accounts = members(home(mesh_regions), ACCOUNTS)
    clients = [account.client("route53resolver", REGION) for account in accounts]
    assert len({id(session_of(client)) for client in clients}) == 1
    assert (
        session_of(clients[0])._max_pool_connections == most == pool_connections(len(mesh_regions))
    )
    for account in accounts:  # its role assumed now (deferred otherwise), on STS's connections
        account.session.get_credentials().get_frozen_credentials()
    accepted = emulator.wsgi_server().opened.accepted
    barrier = threading.Barrier(ACCOUNTS)
    answers: list[list[Any]] = []

    def call(client: Any) -> None:
        barrier.wait()  # all at once: more calls in flight than the pool has connections
        answers.append(client.list_resolver_rules()["ResolverRules"])

    threads = [threading.Thread(target=call, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [[]] * ACCOUNTS
    opened = emulator.wsgi_server().opened.accepted - accepted
    assert opened <= most  # botocore's own pools: one connection per account
    # Every call was signed with its own account's credentials on the shared connections.
    identities = {
        account.client("sts", REGION).get_caller_identity()["Account"] for account in accounts
    }
    assert identities == {account.access.account_id for account in accounts if account.access}


def test_other_endpoints_and_settings_get_pools_of_their_own(aws: ClientFactory) -> None:
    first, second = members(home(), 2)
    shared = session_of(first.client("ec2", REGION))
    assert session_of(second.client("ec2", REGION)) is shared
    assert session_of(first.client("ec2", "eu-west-1")) is not shared
    assert session_of(first.client("ram", REGION)) is not shared
    slower = Aws(Settings(home_region=REGION, call_timeout_seconds=29.0), boto3.session.Session())
    assert session_of(slower.client("ec2", REGION)) is not shared


def test_a_client_through_a_proxy_keeps_its_own_pool(
    aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    first, second = members(home(), 2)
    one, other = first.client("route53profiles", REGION), second.client("route53profiles", REGION)
    assert session_of(one)._proxy_config.proxy_url_for(one._endpoint.host)
    assert session_of(one) is not session_of(other)


def test_a_call_waits_for_a_free_connection_a_bounded_time(
    aws: ClientFactory, emulator: LocalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """urllib3 would wait forever for a connection never given back: past the bound, the call
    fails (an error the mesh reports) instead of hanging every later call to the endpoint."""
    monkeypatch.setattr(session, "POOL_WAIT_SECONDS", 0.2)
    client = members(home(), 1)[0].client("route53profiles", "eu-central-1")
    pools = session_of(client)._manager
    pool = pools.connection_from_url(emulator.endpoint_url)
    held = [pool._get_conn() for _ in range(POOL_CONNECTIONS)]  # every connection taken
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.list_profiles()
        except BaseException as error:  # what the call raised is the answer
            outcome.append(error)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(30)
    assert not caller.is_alive()  # it did not wait forever
    assert [type(error) for error in outcome] == [botocore.exceptions.HTTPClientError]
    for connection in held:
        pool._put_conn(connection)
    assert client.list_profiles()["ProfileSummaries"] == []  # given back: calls go on


def test_the_descriptors_are_shared_out_over_the_endpoints_of_the_mesh_s_regions() -> None:
    assert pool_connections(0) == POOL_CONNECTIONS  # the partition's Regions, not known yet
    sizes = [pool_connections(n) for n in (1, 6, 14, 15, 20, 25, 26, 40)]
    assert sizes == [16, 16, 16, 15, 11, 9, 8, 8]
    for regions in range(1, 26):  # the mesh's own endpoints fit the budget
        assert (regions * 4 + 4) * pool_connections(regions) <= session.SOCKET_BUDGET


def test_the_shared_pools_never_hold_more_than_the_budget_whatever_the_regions(
    aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoints beyond the mesh's Regions (a hub item's Region not in MESH_REGIONS, a rule's
    target) get what remains of the budget, at least one connection each; a session whose
    clients are all gone gives its share back."""
    settings = Settings(home_region=REGION, mesh_regions=SIX_REGIONS, call_timeout_seconds=27.5)
    reconciler = Aws(settings, boto3.session.Session())
    member = members(reconciler, 1)[0]  # the reconciler's STS client made
    parts = session._SHARED_CLIENT_PARTS
    gc.collect()  # earlier tests' sessions give their shares back now, not below
    monkeypatch.setattr(parts, "_sockets", session.SOCKET_BUDGET - 40)  # 40 left
    regions = ("ap-northeast-3", "sa-east-1", "me-south-1", "af-south-1")
    clients = [member.client("route53profiles", region) for region in regions]
    sizes = [session_of(client)._max_pool_connections for client in clients]
    assert sizes == [16, 16, 8, 1]
    kept = [session_of(client)._manager.connection_pool_kw["maxsize"] for client in clients]
    assert kept == sizes  # what urllib3 makes each endpoint's pool with
    assert parts._sockets == session.SOCKET_BUDGET + 1  # the last one's one connection
    member._clients.clear()
    del clients, kept
    gc.collect()
    assert parts._sockets == session.SOCKET_BUDGET - 40  # no client left: their shares back
