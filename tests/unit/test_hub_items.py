"""The hub item contract: parse_hubs rejects each bad item on its own, naming item and field."""

from __future__ import annotations

from typing import Any

import pytest

from resolver_mesh.desired import parse_hubs
from resolver_mesh.models import ItemError

KNOWN = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1")
BAD = "us-east-2"
GOOD = "us-east-1"
MISSING = "<missing>"
OUTBOUND_LIKE = "rslvr-out-0123456789abcdef0"


def bad(id: str, field: str, words: str, **fields: Any) -> Any:
    return pytest.param(fields, field, words, id=id)


BAD_ITEMS = [
    bad("unknown-region", "region", "not a known AWS Region", region="mars-east-1"),
    bad("no-region", "region", "", region=MISSING),
    bad("missing-vpc-id", "vpc_id", "required", vpc_id=MISSING),
    bad("malformed-vpc-id", "vpc_id", "'vpc-XYZ'", vpc_id="vpc-XYZ"),
    bad("vpc-id-not-a-string", "vpc_id", "string", vpc_id=1234567890),
    bad("missing-inbound-id", "inbound_endpoint_id", "required", inbound_endpoint_id=MISSING),
    bad(
        "inbound-id-is-outbound",
        "inbound_endpoint_id",
        OUTBOUND_LIKE,
        inbound_endpoint_id=OUTBOUND_LIKE,
    ),
    bad(
        "malformed-outbound-id",
        "outbound_endpoint_id",
        "rslvr-out-xyz",
        outbound_endpoint_id="rslvr-out-xyz",
    ),
    bad(
        "outbound-id-is-inbound",
        "outbound_endpoint_id",
        "rslvr-in-",
        outbound_endpoint_id="rslvr-in-0123456789abcdef0",
    ),
    bad("vpc-ids-a-string", "vpc_ids", "list", vpc_ids="vpc-0123456789abcdef0"),
    bad(
        "vpc-ids-duplicate",
        "vpc_ids",
        "twice",
        vpc_ids=["vpc-0123456789abcdef0", "vpc-0123456789abcdef0"],
    ),
    bad("vpc-ids-malformed-member", "vpc_ids", "'vpc-1'", vpc_ids=["vpc-1"]),
    bad("domains-empty", "domains", "at least one", domains=[]),
    bad("domains-a-string", "domains", "list", domains="example.com"),
    bad("domains-invalid", "domains", "bad..example.com", domains=["bad..example.com"]),
    bad("domains-leading-hyphen", "domains", "'-x'", domains=["-x.example.com"]),
    bad("domains-root", "domains", "root", domains=["."]),
    bad("domains-duplicate-after-normalising", "domains", "twice", domains=["Foo.com", "foo.com."]),
    bad(
        "domains-duplicate-after-expanding",
        "domains",
        "twice",
        domains=["{region}.amazonaws.com", "US-EAST-2.amazonaws.com"],
    ),
    bad("domains-unknown-template-field", "domains", "{zone}", domains=["{zone}.example.com"]),
    bad("peers-not-a-hub", "peers", "eu-west-1", peers=["eu-west-1"]),
    bad("peers-itself", "peers", "own Region", peers=[BAD]),
    bad("peers-a-string", "peers", "list", peers=GOOD),
    bad("peers-duplicate", "peers", "twice", peers=[GOOD, GOOD]),
    bad("enabled-a-string", "enabled", "boolean", enabled="true"),
    bad("description-not-a-string", "description", "string", description=42),
    bad("unknown-attribute-typo", "vpcids", "not permitted", vpcids=["vpc-0123456789abcdef0"]),
]


@pytest.mark.parametrize(("fields", "field", "words"), BAD_ITEMS)
def test_bad_item_is_rejected_alone(
    world: Any, fields: dict[str, Any], field: str, words: str
) -> None:
    item = world.item(BAD, **{k: world.DROP if v == MISSING else v for k, v in fields.items()})
    region = item.get("region", "<no region>")

    hub_set = parse_hubs([world.item(GOOD), item], KNOWN)

    assert hub_set.errors, "the bad item was accepted"
    assert {e.region for e in hub_set.errors} == {region}
    named = [e for e in hub_set.errors if e.field.split(".")[0] == field]
    assert named, [str(e) for e in hub_set.errors]
    assert any(words in e.message for e in named), [str(e) for e in named]
    for error in named:
        text = str(error)
        assert repr(region) in text
        assert repr(error.field) in text
    assert hub_set.invalid_regions == {region}
    assert region not in hub_set.hubs
    assert list(hub_set.hubs) == [GOOD]
    assert list(hub_set.enabled) == [GOOD]


def test_table_covers_enough_kinds() -> None:
    assert len(BAD_ITEMS) >= 14
    assert len({p.values[1] for p in BAD_ITEMS}) >= 10


def test_two_hubs_claiming_one_domain_both_name_the_other(world: Any) -> None:
    items = [
        world.item("us-east-1", domains=["shared.example.com", "{region}.amazonaws.com"]),
        world.item("us-east-2", domains=["Shared.Example.com."]),
        world.item("us-west-2"),
    ]
    hub_set = parse_hubs(items, KNOWN)

    errors = {e.region: e for e in hub_set.errors}
    assert set(errors) == {"us-east-1", "us-east-2"}
    assert all(e.field == "domains" for e in hub_set.errors)
    assert "shared.example.com." in errors["us-east-1"].message
    assert "us-east-2" in errors["us-east-1"].message
    assert "us-east-1" in errors["us-east-2"].message
    assert list(hub_set.hubs) == ["us-west-2"]


def test_a_disabled_hub_does_not_claim_its_domains(world: Any) -> None:
    items = [
        world.item("us-east-1", domains=["shared.example.com"]),
        world.item("us-east-2", domains=["shared.example.com"], enabled=False),
    ]
    hub_set = parse_hubs(items, KNOWN)
    assert hub_set.errors == ()
    assert set(hub_set.hubs) == {"us-east-1", "us-east-2"}
    assert list(hub_set.enabled) == ["us-east-1"]


def test_two_items_for_one_region_are_both_rejected(world: Any) -> None:
    hub_set = parse_hubs([world.item(BAD), world.item(BAD), world.item(GOOD)], KNOWN)
    assert [(e.region, e.field) for e in hub_set.errors] == [(BAD, "region"), (BAD, "region")]
    assert list(hub_set.hubs) == [GOOD]


def test_defaults(world: Any) -> None:
    item = world.item(BAD)
    hub_set = parse_hubs([item], KNOWN)
    assert hub_set.errors == ()
    hub = hub_set.hubs[BAD]
    assert hub.domain_names == ("us-east-2.amazonaws.com.", "us-east-2.vpce.amazonaws.com.")
    assert hub.enabled is True
    assert hub.peers is None
    assert hub.vpc_ids == ()
    assert hub.associated_vpc_ids == {item["vpc_id"]}
    assert hub_set.item_regions == {BAD}


def test_outbound_endpoint_is_optional(world: Any) -> None:
    hub_set = parse_hubs([world.item(BAD, outbound_endpoint_id=world.DROP)], KNOWN)
    assert hub_set.errors == ()
    assert hub_set.hubs[BAD].outbound_endpoint_id is None


def test_dynamodb_string_sets_are_accepted(world: Any) -> None:
    workloads = {"vpc-0000000000000000b", "vpc-0000000000000000a"}
    item = world.item(
        BAD,
        vpc_ids=set(workloads),
        domains={"{region}.Example.com", "corp.example.com."},
        peers={GOOD},
    )
    hub_set = parse_hubs([item, world.item(GOOD)], KNOWN)
    assert hub_set.errors == ()
    hub = hub_set.hubs[BAD]
    assert hub.vpc_ids == ("vpc-0000000000000000a", "vpc-0000000000000000b")
    assert hub.associated_vpc_ids == {item["vpc_id"], *workloads}
    assert set(hub.domain_names) == {"us-east-2.example.com.", "corp.example.com."}
    assert hub.peers == (GOOD,)


def test_description_and_explicit_fields_are_accepted(world: Any) -> None:
    item = world.item(
        BAD,
        description="hub of the Ohio network team",
        vpc_ids=["vpc-0123456789abcdef0"],
        domains=["{region}.amazonaws.com", "Corp.Example.COM."],
        peers=[GOOD],
        enabled=True,
    )
    hub_set = parse_hubs([item, world.item(GOOD)], KNOWN)
    assert hub_set.errors == ()
    hub = hub_set.hubs[BAD]
    assert hub.description == "hub of the Ohio network team"
    assert hub.domain_names == ("us-east-2.amazonaws.com.", "corp.example.com.")


def test_disabled_hub_is_valid_but_not_enabled(world: Any) -> None:
    hub_set = parse_hubs([world.item(BAD, enabled=False), world.item(GOOD)], KNOWN)
    assert hub_set.errors == ()
    assert set(hub_set.hubs) == {BAD, GOOD}
    assert hub_set.hubs[BAD].enabled is False
    assert set(hub_set.enabled) == {GOOD}


def test_unknown_regions_are_not_checked_without_a_list(world: Any) -> None:
    hub_set = parse_hubs([world.item("xx-test-1")], None)
    assert hub_set.errors == ()
    assert set(hub_set.hubs) == {"xx-test-1"}


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            ItemError("us-east-2", "vpc_id", "missing"),
            "hub item 'us-east-2': field 'vpc_id': missing",
        ),
        (ItemError("us-east-2", "", "unreadable"), "hub item 'us-east-2': the item: unreadable"),
    ],
)
def test_item_error_text(error: ItemError, text: str) -> None:
    assert str(error) == text


def _nested(region: str, n: int, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "region": region,
        "vpc_id": f"vpc-{n:017x}",
        "inbound_endpoint_id": f"rslvr-in-{n:017x}",
        "outbound_endpoint_id": f"rslvr-out-{n:017x}",
    }
    item.update(fields)
    return {k: v for k, v in item.items() if v is not None}


@pytest.mark.parametrize(
    ("inner_fields", "loops"),
    [
        ({}, True),  # the inner hub forwards corp.example to the outer one, which sends it back
        ({"outbound_endpoint_id": None}, False),  # answers only: no rule to loop through
        ({"peers": ["us-east-1"]}, False),  # does not forward to the outer hub
        ({"enabled": False}, False),
    ],
    ids=["peered", "answer-only", "not-peered", "disabled"],
)
def test_a_domain_inside_a_peers_domain_is_rejected_when_it_would_loop(
    inner_fields: dict[str, Any], loops: bool
) -> None:
    items = [
        _nested("us-east-1", 1),
        _nested("us-west-2", 2, domains=["corp.example"]),
        _nested("us-east-2", 3, domains=["east.corp.example"], **inner_fields),
    ]
    errors = parse_hubs(items, KNOWN).errors
    if loops:
        assert [(e.region, e.field) for e in errors] == [("us-east-2", "domains")]
        assert "east.corp.example. lies inside corp.example. of us-west-2" in errors[0].message
    else:
        assert errors == ()
