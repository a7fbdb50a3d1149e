"""A hub in an opt-in Region that some member accounts have not enabled, end to end: the Lambda
handler against the HTTP emulator (`mesh_emulator.optin` refuses the account's calls there as
AWS does), member accounts listed in MEMBER_ROLES, VPCs joining by tag.

AWS refuses every call an account makes in a Region it has not enabled, as it refuses bad
credentials. Nothing of the mesh can be there, so such a location is a note, not an error on
every pass; it does not hold back the sweep of a removed hub's Region; and an item that names
a VPC there is an error naming its entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from meshkit import HOME_REGION, Mesh
from test_accounts_safety import THIRD, THIRD_ROLE, domains, reach, third
from test_spokes_accounts import EXTERNAL_ID, MEMBER, ROLE, member, rules_and_vpcs
from test_tag_join import tagged_vpc, used_by

from mesh_emulator.optin import RegionGate, regions_not_enabled
from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import CachedClients, ClientFactory

__all__ = ["member", "third"]  # fixtures shared with the other multi-account tests

EAST_2 = "us-east-2"
OPT_IN = "ap-east-1"  # an opt-in Region: THIRD has not enabled it
REGIONS = (HOME_REGION, EAST_2, OPT_IN)


@pytest.fixture
def opt_in_mesh(make_mesh: Callable[..., Mesh]) -> Mesh:
    """Hubs in us-east-1, us-east-2 and ap-east-1 of the home account; MEMBER and THIRD in
    MEMBER_ROLES; a full resync sweeps the three Regions."""
    mesh = make_mesh(REGIONS)
    mesh.mesh_regions = REGIONS
    mesh.monkeypatch.setenv("MEMBER_ROLES", f"{ROLE}|{EXTERNAL_ID},{THIRD_ROLE}|{EXTERNAL_ID}")
    return mesh


@pytest.fixture
def gate(emulator: LocalEmulator) -> Iterator[RegionGate]:
    with regions_not_enabled(emulator, {THIRD: [OPT_IN]}) as gate:
        yield gate


def managed_in(clients: ClientFactory, region: str) -> set[str]:
    """The domains of the rules of ours that the account owns in `region`."""
    found = rules_and_vpcs(clients, region)
    return {
        rule["DomainName"]
        for rule in found.values()
        if rule.get("OwnerId") in (None, "123456789012")
        and "resolver-mesh/" in str(rule.get("CreatorRequestId", ""))
    }


def test_a_region_a_member_has_not_enabled_is_a_note_not_an_error(
    opt_in_mesh: Mesh,
    member: CachedClients,
    third: CachedClients,
    aws: ClientFactory,
    gate: RegionGate,
) -> None:
    member_vpc = tagged_vpc(member, OPT_IN, "10.211.0.0/16")
    third_vpc = tagged_vpc(third, HOME_REGION, "10.212.0.0/16")

    result = opt_in_mesh.resync()
    assert result["ok"], result["errors"]
    assert result["errors"] == []
    notes = [n for n in result["notes"] if n.startswith("not enabled:")]
    assert notes == [
        f"not enabled: {OPT_IN} ({THIRD}): opt-in Regions these accounts have not enabled;"
        " AWS refuses every call there, so nothing is read or changed there"
    ]
    assert {(v["region"], v.get("account"), v["vpc_id"]) for v in result["joined"]} >= {
        (OPT_IN, MEMBER, member_vpc),
        (HOME_REGION, THIRD, third_vpc),
    }
    assert used_by(member, OPT_IN, member_vpc) == domains(HOME_REGION, EAST_2)
    assert used_by(third, HOME_REGION, third_vpc) == domains(EAST_2, OPT_IN)
    # THIRD's location there: its VPC read and its Resolver read, refused once each
    assert gate.refused == {(THIRD, OPT_IN): 2}

    again = opt_in_mesh.resync()
    assert again["ok"], again["errors"]
    assert again["changes"] == []
    assert again["calls"]["writes"] == 0
    assert gate.refused == {(THIRD, OPT_IN): 4}


def test_an_item_naming_a_vpc_where_its_account_has_not_enabled_the_region_is_an_error(
    opt_in_mesh: Mesh, third: CachedClients, aws: ClientFactory, gate: RegionGate
) -> None:
    assert opt_in_mesh.resync()["ok"]
    before = managed_in(aws, OPT_IN)
    named = {**reach(THIRD), "vpc_id": "vpc-0123456789abcdef0"}
    opt_in_mesh.update(OPT_IN, shared_vpcs=[named])

    result = opt_in_mesh.resync()
    assert not result["ok"]
    assert [(e["kind"], e["region"], e["field"]) for e in result["errors"]] == [
        ("hub_item", OPT_IN, "shared_vpcs")
    ]
    assert (
        f"entry 0: {OPT_IN} is not enabled in account {THIRD} (an opt-in Region)"
        in result["errors"][0]["message"]
    )
    assert managed_in(aws, OPT_IN) == before  # its Region is frozen: nothing lost


def test_a_removed_hubs_region_is_swept_though_a_member_has_not_enabled_it(
    opt_in_mesh: Mesh, third: CachedClients, aws: ClientFactory, gate: RegionGate
) -> None:
    assert opt_in_mesh.resync()["ok"]
    assert managed_in(aws, OPT_IN) == domains(HOME_REGION, EAST_2)

    opt_in_mesh.remove(OPT_IN)
    result = opt_in_mesh.resync(force=True)
    assert result["ok"], result["errors"]
    assert managed_in(aws, OPT_IN) == set()
    assert managed_in(aws, HOME_REGION) == domains(EAST_2)
    assert not any("could not be read" in n for n in result["notes"])


def test_a_hub_in_a_region_its_account_has_not_enabled_is_an_item_error(
    opt_in_mesh: Mesh, third: CachedClients, aws: ClientFactory, gate: RegionGate
) -> None:
    assert opt_in_mesh.resync()["ok"]
    before = managed_in(aws, OPT_IN)
    opt_in_mesh.update(OPT_IN, **reach(THIRD))  # the hub now said to be THIRD's

    result = opt_in_mesh.resync()
    assert not result["ok"]
    assert [(e["kind"], e["region"], e["field"]) for e in result["errors"]] == [
        ("hub_item", OPT_IN, "account_id")
    ]
    assert f"{OPT_IN} is not enabled in account {THIRD}" in result["errors"][0]["message"]
    assert managed_in(aws, OPT_IN) == before  # its Region is frozen: nothing lost


def test_verify_says_why_a_vpc_in_a_region_not_enabled_is_unknown(
    opt_in_mesh: Mesh, third: CachedClients, aws: ClientFactory, gate: RegionGate
) -> None:
    vpc = "vpc-0123456789abcdef0"
    opt_in_mesh.update(OPT_IN, shared_vpcs=[{**reach(THIRD), "vpc_id": vpc}])

    verified = opt_in_mesh.cli("verify", "--json")
    cells = [c for c in verified.json["cells"] if c["vpc_id"] == vpc]
    assert cells
    assert {c["status"] for c in cells} == {"unknown"}
    why = f"{OPT_IN}@{THIRD} could not be read: {OPT_IN} is not enabled in account {THIRD}"
    assert all(c["detail"].startswith(why) for c in cells), cells[0]
