"""The names AWS really serves, end to end on the HTTP emulator: `{services}` hubs forward the
private DNS names `DescribeVpcEndpointServices` gives (kinesis-streams answers as `kinesis.<r>`),
`verify` agrees with what `apply` built, names that cannot be read keep their rules, and a path
through a hub that cannot be read is `unknown`, never a gap.
"""

from __future__ import annotations

import io
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from meshkit import HOME_REGION, Mesh
from test_accounts_safety import MEMBER_HUB_CIDR, RefusedRoles, reach, refused_roles
from test_spokes_accounts import MEMBER, member

from mesh_emulator.ec2 import PRIVATE_DNS_NAMES
from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    build_hub,
    build_spoke,
    hub_item,
    spoke_item,
)

__all__ = ["member", "refused_roles"]  # fixtures shared with the account tests

E1, E2, W2 = HOME_REGION, "us-east-2", "us-west-2"
SERVICES = ["{services}", "{region}.vpce.amazonaws.com"]
E2_NAMES = {
    *(f"{name}.{E2}.amazonaws.com." for name in ("s3", "s3-accesspoint", "s3-control", "kinesis")),
    f"{E2}.vpce.amazonaws.com.",
}


def test_the_emulator_gives_the_private_dns_names_aws_gives(aws: ClientFactory) -> None:
    ec2 = aws("ec2", E2)
    services = [f"com.amazonaws.{E2}.{s}" for s in (*PRIVATE_DNS_NAMES, "lambda")]
    pages = ec2.get_paginator("describe_vpc_endpoint_services").paginate(ServiceNames=services)
    details = [d for page in pages for d in page["ServiceDetails"]]
    interface = {
        d["ServiceName"].removeprefix(f"com.amazonaws.{E2}."): d
        for d in details
        if d["ServiceType"] == [{"ServiceType": "Interface"}]
    }

    def names(service: str) -> list[str]:
        detail = interface[service]
        return [detail["PrivateDnsName"], *(n["PrivateDnsName"] for n in detail["PrivateDnsNames"])]

    assert names("s3") == [
        f"*.s3.{E2}.amazonaws.com",
        f"*.s3.{E2}.amazonaws.com",
        f"*.s3-accesspoint.{E2}.amazonaws.com",
        f"*.s3-control.{E2}.amazonaws.com",
    ]
    assert names("kinesis-streams") == [f"kinesis.{E2}.amazonaws.com"] * 2
    assert names("ecr.api") == [f"api.ecr.{E2}.amazonaws.com"] * 2
    assert names("ecr.dkr") == [f"*.dkr.ecr.{E2}.amazonaws.com"] * 2
    assert names("eks-auth") == [f"eks-auth.{E2}.api.aws"] * 2
    for service in ("kms", "sts", "ssm", "lambda"):  # lambda: moto's own answer, untouched
        assert names(service) == [f"{service}.{E2}.amazonaws.com"] * 2
    gateway = [d for d in details if d["ServiceType"] == [{"ServiceType": "Gateway"}]]
    assert [d["ServiceName"] for d in gateway] == [f"com.amazonaws.{E2}.s3"]


def add_endpoint(mesh: Mesh, region: str, service: str) -> str:
    hub = mesh.hubs[region]
    endpoint = mesh.aws("ec2", region).create_vpc_endpoint(
        VpcId=hub.vpc_id,
        ServiceName=f"com.amazonaws.{region}.{service}",
        VpcEndpointType="Interface",
        SubnetIds=list(hub.subnet_ids),
        PrivateDnsEnabled=True,
    )
    return str(endpoint["VpcEndpoint"]["VpcEndpointId"])


@pytest.fixture
def services_mesh(make_mesh: Callable[..., Mesh]) -> Mesh:
    """us-east-1 (defaults) and us-east-2 (`{services}`, with S3 and Kinesis endpoints)."""
    mesh = make_mesh(regions=(E1, E2), items={E2: {"domains": SERVICES}})
    add_endpoint(mesh, E2, "kinesis-streams")
    return mesh


def test_apply_forwards_the_names_aws_serves_and_verify_agrees(services_mesh: Mesh) -> None:
    applied = services_mesh.resync()
    assert applied["ok"], applied["errors"]
    east1 = services_mesh.observe(E1)
    assert {r["DomainName"] for r in east1.managed()} == E2_NAMES

    result = services_mesh.script("verify", "--json")

    assert result.code == 0, result.out + result.err
    matrix = result.json
    owners = {n["name"]: n["owner"] for n in matrix["names"]}
    assert {name for name, owner in owners.items() if owner == E2} == E2_NAMES
    assert "kinesis-streams.us-east-2.amazonaws.com." not in owners
    vpcs = {v["vpc_id"]: v for v in matrix["vpcs"]}
    for cell in matrix["cells"]:
        own = owners[cell["name"]] == vpcs[cell["vpc_id"]]["region"]
        assert cell["status"] == ("local" if own else "private"), cell
        assert cell.get("via") == (None if own else owners[cell["name"]]), cell
    east2_vpc = services_mesh.hubs[E2].vpc_id
    own_cells = {c["name"]: c["status"] for c in matrix["cells"] if c["vpc_id"] == east2_vpc}
    assert {name: own_cells[name] for name in E2_NAMES} == dict.fromkeys(E2_NAMES, "local")


class RefusedAction:
    """WSGI middleware in front of the emulator: one EC2 query action answered 403
    UnauthorizedOperation, as AWS does when the role lacks it."""

    def __init__(self, app: Any, action: str) -> None:
        self.app = app
        self.action = action
        self.refused = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if urllib.parse.parse_qs(body.decode(errors="replace")).get("Action") != [self.action]:
            return self.app(environ, start_response)
        self.refused += 1
        payload = (
            "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not"
            f" authorized to perform this operation ({self.action}).</Message></Error></Errors>"
            "<RequestID>refused</RequestID></Response>"
        ).encode()
        start_response(
            "403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))]
        )
        return [payload]


def test_names_that_cannot_be_read_keep_their_rules(
    services_mesh: Mesh, emulator: LocalEmulator
) -> None:
    assert services_mesh.resync()["ok"]
    before = services_mesh.snapshot((E1, E2))
    with emulator.wrapped(
        lambda app: RefusedAction(app, "DescribeVpcEndpointServices")
    ) as refusing:
        kept = services_mesh.resync()
        verified = services_mesh.cli("verify")

    assert refusing.refused > 0
    assert kept["changes"] == [], kept["changes"]
    assert services_mesh.snapshot((E1, E2)) == before
    [degraded] = kept["degraded"]
    assert degraded.startswith(f"hub {E2}: cannot read the private DNS names of com.amazonaws.")
    assert "UnauthorizedOperation" in degraded
    assert "rules that forward to this hub are kept as they are" in degraded
    assert verified.code == 1
    assert "cannot read the private DNS names" in verified.out
    assert services_mesh.resync()["changes"] == []  # readable again: nothing to do


def test_a_central_spoke_behind_an_unreadable_hub_shows_the_known_path(
    make_mesh: Callable[..., Mesh],
    aws: ClientFactory,
    member: CachedClients,
    refused_roles: RefusedRoles,
) -> None:
    mesh = make_mesh(regions=(E1, E2))
    mesh.put(hub_item(build_hub(member, W2, MEMBER_HUB_CIDR), **reach()))
    spoke = build_spoke(aws, E1, "10.100.0.0/16", "spoke")
    mesh.update(E1, spokes=[spoke_item(spoke, "central")])
    assert mesh.resync()["ok"]
    assert mesh.script("verify").code == 0

    refused_roles.accounts = frozenset({MEMBER})
    result = mesh.script("verify", "--json")

    assert result.code == 1  # the hub could not be read: an error
    cells = {(c["vpc_id"], c["name"]): c for c in result.json["cells"]}
    for domain in ("amazonaws.com", "vpce.amazonaws.com"):
        cell = cells[spoke.vpc_id, f"{W2}.{domain}."]
        assert (cell["status"], cell["via"], cell["path"]) == ("unknown", E1, [E1, E1, W2])
        assert cells[mesh.hubs[E1].vpc_id, f"{W2}.{domain}."]["status"] == "unknown"
    assert "gap" not in {c["status"] for c in result.json["cells"]}
    assert cells[spoke.vpc_id, f"{E2}.amazonaws.com."]["status"] == "private"
