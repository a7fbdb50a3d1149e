"""Issue 10, part 3: Regions as AWS knows them, through the handler and the CLI over HTTP.

- a Region newer than botocore's lists is accepted once the account lists it, and reconciled;
- a full resync sweeps only the home Region's partition (moto lists cn-* and us-gov-* too);
- `MESH_REGIONS` / `--mesh-regions` are checked before anything is read;
- a Region an SCP denies is reported once as denied on a full resync (the run stays ok), is an
  error where a hub item is or where a request names it, and `EXCLUDED_REGIONS` are never read.
The emulator extensions themselves (`mesh_emulator.ec2`, `mesh_emulator.scp`) are tested in
tests/emulator/test_regions_extensions.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from meshkit import HOME_REGION, MESH_REGIONS, Mesh

from mesh_emulator.ec2 import new_region
from mesh_emulator.scp import denied_regions
from mesh_emulator.server import LocalEmulator
from resolver_mesh.aws.session import Aws
from resolver_mesh.config import ConfigError, Settings
from resolver_mesh.local.topology import ClientFactory, build_hub, hub_item

NEW = "ap-futurex-1"  # botocore lists no such Region; its partition's pattern matches it
SPARE = "ap-southeast-2"  # swept by the tests' MESH_REGIONS, no hub there


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


# --- Regions botocore does not list ------------------------------------------------------------


def test_a_client_for_a_region_botocore_does_not_list_reaches_its_endpoint(
    emulator: LocalEmulator, aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's endpoint rules resolve any name its partition's pattern matches: without an
    endpoint override the address is AWS's, with one the call reaches the emulator, signed
    for that Region (the denier sees its credential scope)."""
    reconciler_aws = Aws(Settings(home_region=HOME_REGION))
    with denied_regions(emulator, [NEW]) as denier, pytest.raises(ClientError) as refused:
        reconciler_aws.resolver(NEW).read(rules=True, endpoints=False, inbound_ids=())
    assert _code(refused) == "AccessDeniedException"
    assert denier.refused == {NEW: 1}

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    elsewhere = Aws(Settings(home_region=HOME_REGION))
    url = elsewhere.client("route53resolver", NEW).meta.endpoint_url
    assert url == f"https://route53resolver.{NEW}.amazonaws.com"
    eusc = Aws(Settings(home_region="eusc-de-east-1"))
    assert eusc.partition == "aws-eusc"
    assert eusc.client("route53resolver", "eusc-de-east-9").meta.endpoint_url == (
        "https://route53resolver.eusc-de-east-9.amazonaws.eu"
    )


def test_a_hub_in_a_region_newer_than_botocore_reconciles(
    make_mesh: Callable[..., Mesh], aws: ClientFactory
) -> None:
    with new_region(NEW):
        mesh = make_mesh(("us-east-1", "us-east-2"))
        mesh.put(hub_item(build_hub(aws, NEW, cidr="10.200.0.0/16")))
        report = mesh.resync()
        assert report["ok"], report["errors"]
        assert NEW in report["regions"]
        here = {r["DomainName"] for r in mesh.observe(NEW).managed(mesh.mesh_id)}
        assert "us-east-2.amazonaws.com." in here
        east = {r["DomainName"] for r in mesh.observe("us-east-2").managed(mesh.mesh_id)}
        assert f"{NEW}.amazonaws.com." in east
        assert mesh.resync()["counts"]["create_rule"] == 0


# --- the partition -----------------------------------------------------------------------------


def test_a_full_resync_sweeps_only_the_home_partition(mesh: Mesh) -> None:
    mesh.mesh_regions = ()  # sweep the account's enabled Regions
    result = mesh.script("plan", "--json")
    assert result.code == 0, result.err
    swept = json.loads(result.out)["regions"]
    listed = mesh.aws("ec2", HOME_REGION).describe_regions()["Regions"]
    session = boto3.session.Session()
    ours = {r["RegionName"] for r in listed} - {"cn-north-1", "cn-northwest-1"}
    ours -= {"us-gov-east-1", "us-gov-west-1"}
    assert set(swept) == ours
    assert {session.get_partition_for_region(r) for r in swept} == {"aws"}


# --- MESH_REGIONS checked up front -------------------------------------------------------------


@pytest.mark.parametrize(
    ("regions", "words"),
    [
        ("us-east-1,us-east-2x", "'us-east-2x' is not a Region name"),
        ("us-east-1,us-esat-2", "us-esat-2: not a known Region of the aws partition"),
        ("us-east-1,cn-north-1", "cn-north-1: not a known Region of the aws partition"),
    ],
)
def test_bad_mesh_regions_are_a_usage_error_naming_the_setting(
    mesh: Mesh, regions: str, words: str
) -> None:
    before = mesh.snapshot()
    result = mesh.script("apply", "--mesh-regions", regions)
    assert result.code == 2, result.out
    assert "MESH_REGIONS (--mesh-regions)" in result.err
    assert words in result.err
    assert mesh.snapshot() == before

    mesh.mesh_regions = tuple(regions.split(","))
    with pytest.raises(ConfigError, match="MESH_REGIONS"):
        mesh.resync()


# --- denied and excluded Regions ---------------------------------------------------------------


def test_a_denied_region_without_a_hub_is_reported_once_and_the_resync_stays_ok(
    mesh: Mesh, emulator: LocalEmulator
) -> None:
    with denied_regions(emulator, [SPARE]):
        report = mesh.resync()
    assert report["ok"], report["errors"]
    assert report["errors"] == []
    assert report["denied_regions"] == [SPARE]
    notes = [n for n in report["notes"] if SPARE in n]
    assert len(notes) == 1
    assert "denied" in notes[0]
    assert "not found or removed" in notes[0]
    mesh.assert_converged()


def test_a_denied_region_is_an_error_where_a_hub_is_or_a_request_names_it(
    mesh: Mesh, emulator: LocalEmulator
) -> None:
    with denied_regions(emulator, ["us-west-2", SPARE]):
        full = mesh.resync()
        named = mesh.resync(regions=[SPARE])
    assert not full["ok"]
    assert [e["region"] for e in full["errors"]] == ["us-west-2"]
    assert "AccessDeniedException" in full["errors"][0]["message"]
    assert full["denied_regions"] == [SPARE]
    assert not named["ok"]
    assert named["denied_regions"] == []
    assert [e["region"] for e in named["errors"]] == [SPARE, "us-west-2"]  # its hub's inbound IPs


def test_excluded_regions_are_never_read_and_named_as_not_swept(
    make_mesh: Callable[..., Mesh], emulator: LocalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub leaves a Region that is then excluded: the rules elsewhere that forward to it go,
    its own rules there stay (never read), and the report says so."""
    mesh = make_mesh(("us-east-1", "us-east-2", "us-west-2", SPARE))
    assert mesh.resync()["ok"]
    mesh.remove(SPARE)
    mesh.mesh_regions = tuple(r for r in MESH_REGIONS if r != SPARE)
    monkeypatch.setenv("EXCLUDED_REGIONS", SPARE)
    left_there = mesh.observe(SPARE).managed(mesh.mesh_id)
    with denied_regions(emulator, [SPARE]) as denier:
        report = mesh.resync()
    assert report["ok"], report["errors"]
    assert denier.refused == {}
    assert SPARE not in report["regions"]
    assert any(n.startswith(f"not swept (excluded): {SPARE}:") for n in report["notes"])
    assert mesh.observe(SPARE).managed(mesh.mesh_id) == left_there != []
    for region in ("us-east-1", "us-east-2", "us-west-2"):
        domains = {r["DomainName"] for r in mesh.observe(region).managed(mesh.mesh_id)}
        assert f"{SPARE}.amazonaws.com." not in domains


def test_an_excluded_region_with_a_hub_is_an_error_and_changes_nothing_there(
    mesh: Mesh, emulator: LocalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mesh.resync()["ok"]
    mesh.mesh_regions = ("us-east-1", "us-east-2")
    monkeypatch.setenv("EXCLUDED_REGIONS", "us-west-2")
    before = mesh.snapshot()
    with denied_regions(emulator, ["us-west-2"]) as denier:
        report: dict[str, Any] = mesh.resync()
    assert denier.refused == {}
    assert not report["ok"]
    assert [e["region"] for e in report["errors"]] == ["us-west-2"]
    assert "EXCLUDED_REGIONS" in report["errors"][0]["message"]
    assert mesh.snapshot() == before
