"""ADOPT_UNMANAGED: a hand-made rule for a domain the mesh wants is taken over, not duplicated."""

from __future__ import annotations

from typing import Any

import pytest

from resolver_mesh.aws.session import Aws
from resolver_mesh.config import Settings
from resolver_mesh.local.topology import (
    ClientFactory,
    build_hub,
    create_hubs_table,
    create_unmanaged_rule,
    hub_item,
)
from resolver_mesh.models import Request
from resolver_mesh.names import OWNER_TAG_KEY, TARGET_TAG_KEY
from resolver_mesh.reconcile import Reconciler

REGIONS = ("us-east-1", "us-east-2", "us-west-2")
TABLE = "adoption-hubs"


def _tags(client_factory: ClientFactory, region: str, rule_id: str) -> dict[str, str]:
    resolver = client_factory("route53resolver", region)
    arn = resolver.get_resolver_rule(ResolverRuleId=rule_id)["ResolverRule"]["Arn"]
    tags = resolver.list_tags_for_resource(ResourceArn=arn)["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


def _rules_for(client_factory: ClientFactory, region: str, domain: str) -> list[dict[str, Any]]:
    resolver = client_factory("route53resolver", region)
    pages = resolver.get_paginator("list_resolver_rules").paginate()
    return [r for page in pages for r in page["ResolverRules"] if r["DomainName"] == domain]


@pytest.fixture
def world(aws: ClientFactory) -> dict[str, Any]:
    hubs = {region: build_hub(aws, region) for region in REGIONS}
    create_hubs_table(aws, "us-east-1", TABLE)
    # Someone forwarded us-east-2's domain by hand in us-east-1, to a stale IP, on the hub VPC.
    east1, east2 = hubs["us-east-1"], hubs["us-east-2"]
    hand_made = create_unmanaged_rule(
        aws,
        "us-east-1",
        "us-east-2.amazonaws.com",
        str(east1.outbound_endpoint_id),
        "10.99.0.1",
        vpc_id=east1.vpc_id,
        name="hand-made",
    )
    return {"hubs": hubs, "hand_made": hand_made, "east2": east2}


def _reconciler(adopt: bool) -> Reconciler:
    settings = Settings.from_env(
        table_name=TABLE,
        home_region="us-east-1",
        mesh_regions=REGIONS,
        adopt_unmanaged=adopt,
        calls_per_second=100.0,
    )
    return Reconciler(Aws(settings))


def _register(reconciler: Reconciler, world: dict[str, Any]) -> None:
    for hub in world["hubs"].values():
        reconciler.aws.hubs_table().put_item(hub_item(hub))


def test_without_adoption_the_hand_made_rule_is_a_conflict(
    aws: ClientFactory, world: dict[str, Any]
) -> None:
    reconciler = _reconciler(adopt=False)
    _register(reconciler, world)
    report = reconciler.run(Request(apply=True)).as_dict()
    assert not report["ok"]
    assert [c["their_rule_id"] for c in report["conflicts"]] == [world["hand_made"]]
    assert _tags(aws, "us-east-1", world["hand_made"]).get(OWNER_TAG_KEY) is None


def test_with_adoption_the_hand_made_rule_becomes_ours_and_is_fixed_in_place(
    aws: ClientFactory, world: dict[str, Any]
) -> None:
    reconciler = _reconciler(adopt=True)
    _register(reconciler, world)
    report = reconciler.run(Request(apply=True)).as_dict()
    assert report["ok"], report["errors"] + report["conflicts"]
    assert report["counts"]["adopt_rule"] == 1
    assert report["counts"]["create_rule"] == 11  # 12 rules in a mesh of 3, one adopted

    rules = _rules_for(aws, "us-east-1", "us-east-2.amazonaws.com.")
    assert [r["Id"] for r in rules] == [world["hand_made"]]  # no second rule for the domain
    inbound = aws("route53resolver", "us-east-2").list_resolver_endpoint_ip_addresses(
        ResolverEndpointId=world["east2"].inbound_endpoint_id
    )["IpAddresses"]
    assert {t["Ip"] for t in rules[0]["TargetIps"]} == {ip["Ip"] for ip in inbound}
    assert _tags(aws, "us-east-1", world["hand_made"]) == {
        OWNER_TAG_KEY: "resolver-mesh",
        TARGET_TAG_KEY: "us-east-2",
    }
    again = reconciler.run(Request(apply=True)).as_dict()
    assert again["calls"]["writes"] == 0


def test_an_adopted_rule_is_managed_from_then_on(aws: ClientFactory, world: dict[str, Any]) -> None:
    reconciler = _reconciler(adopt=True)
    _register(reconciler, world)
    assert reconciler.run(Request(apply=True)).ok
    # us-east-2 peers with nobody any more: us-east-1 must drop its rules for us-east-2,
    # the adopted one included (us-east-2 is still a hub, it only stops being forwarded to).
    item = hub_item(world["hubs"]["us-east-1"], peers=["us-west-2"])
    reconciler.aws.hubs_table().put_item(item)
    report = reconciler.run(Request(apply=True)).as_dict()
    assert report["ok"], report
    assert _rules_for(aws, "us-east-1", "us-east-2.amazonaws.com.") == []


def test_another_meshs_rule_is_never_adopted(aws: ClientFactory, world: dict[str, Any]) -> None:
    resolver = aws("route53resolver", "us-east-1")
    arn = resolver.get_resolver_rule(ResolverRuleId=world["hand_made"])["ResolverRule"]["Arn"]
    resolver.tag_resource(ResourceArn=arn, Tags=[{"Key": OWNER_TAG_KEY, "Value": "other-mesh"}])
    reconciler = _reconciler(adopt=True)
    _register(reconciler, world)
    report = reconciler.run(Request(apply=True)).as_dict()
    assert report["counts"]["adopt_rule"] == 0
    assert [c["their_rule_id"] for c in report["conflicts"]] == [world["hand_made"]]
    assert _tags(aws, "us-east-1", world["hand_made"])[OWNER_TAG_KEY] == "other-mesh"
