"""`{services}` domains: a hub forwards the private DNS names of its interface endpoints."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from resolver_mesh.desired import HubSet, desired_rules, parse_hubs, target_domains
from resolver_mesh.models import HubItem, InterfaceEndpoint, ObservedEndpoint, RegionState
from resolver_mesh.names import private_dns_names
from resolver_mesh.plan import make_plan

from .builders import converged

REGIONS = ("us-east-1", "us-east-2")
SERVICES = ["{services}", "{region}.vpce.amazonaws.com"]


def item(region: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "region": region,
        "vpc_id": f"vpc-{n:017x}",
        "inbound_endpoint_id": f"rslvr-in-{n:017x}",
        "outbound_endpoint_id": f"rslvr-out-{n:017x}",
        **fields,
    }


def state(region: str, n: int, *endpoints: InterfaceEndpoint) -> RegionState:
    return RegionState(
        region,
        endpoints=(
            ObservedEndpoint(
                f"rslvr-in-{n:017x}", "INBOUND", "OPERATIONAL", f"vpc-{n:017x}", (f"10.{n}.0.10",)
            ),
            ObservedEndpoint(f"rslvr-out-{n:017x}", "OUTBOUND", "OPERATIONAL", f"vpc-{n:017x}"),
        ),
        interface_endpoints=endpoints,
    )


# The private DNS names AWS gives these services (see mesh_emulator/ec2.py).
NAMES = {
    "s3": ("s3", "s3-accesspoint", "s3-control"),
    "kms": ("kms",),
    "ecr.api": ("api.ecr",),
    "kinesis-streams": ("kinesis",),
    "sqs": ("sqs",),
    "sts": ("sts",),
    "ssm": ("ssm",),
}


def endpoint(region: str, n: int, service: str, **fields: Any) -> InterfaceEndpoint:
    values: dict[str, Any] = {
        "id": f"vpce-{service}-{region}",
        "vpc_id": f"vpc-{n:017x}",
        "service_name": f"com.amazonaws.{region}.{service}",
        "private_dns": True,
        "state": "available",
        "dns_names": tuple(f"{name}.{region}.amazonaws.com." for name in NAMES[service]),
    }
    values.update(fields)
    return InterfaceEndpoint(**values)


def test_services_is_an_entry_of_its_own() -> None:
    hub = HubItem.model_validate(item("us-east-2", 2, domains=SERVICES))
    assert hub.uses_services
    assert hub.domain_names == ("us-east-2.vpce.amazonaws.com.",)
    assert parse_hubs([item("us-east-2", 2, domains=["s3.{services}"])], None).errors[0].field == (
        "domains"
    )


def test_the_names_of_available_private_dns_endpoints_are_forwarded() -> None:
    hub = HubItem.model_validate(item("us-east-2", 2, domains=SERVICES))
    observed = state(
        "us-east-2",
        2,
        endpoint("us-east-2", 2, "s3"),
        endpoint("us-east-2", 2, "kms"),
        endpoint("us-east-2", 2, "ecr.api"),
        endpoint("us-east-2", 2, "kinesis-streams"),
        endpoint("us-east-2", 2, "sqs", private_dns=False),
        endpoint("us-east-2", 2, "sts", state="pending"),
        endpoint("us-east-2", 2, "ssm", vpc_id="vpc-00000000000000999"),  # a workload VPC's
    )
    assert target_domains(hub, observed) == (
        "us-east-2.vpce.amazonaws.com.",
        "s3.us-east-2.amazonaws.com.",
        "s3-accesspoint.us-east-2.amazonaws.com.",
        "s3-control.us-east-2.amazonaws.com.",
        "kms.us-east-2.amazonaws.com.",
        "api.ecr.us-east-2.amazonaws.com.",
        "kinesis.us-east-2.amazonaws.com.",  # the name AWS serves, not kinesis-streams
    )


@pytest.mark.parametrize("cross_region", [False, True])
def test_a_source_with_its_own_cross_region_endpoint_does_not_forward_that_service(
    cross_region: bool,
) -> None:
    hubs = parse_hubs([item("us-east-1", 1), item("us-east-2", 2, domains=SERVICES)], None)
    assert isinstance(hubs, HubSet)
    assert not hubs.errors
    own = (
        (endpoint("us-east-2", 1, "kms", id="vpce-cross", service_region="us-east-2"),)
        if cross_region
        else ()
    )
    states = {
        "us-east-1": state("us-east-1", 1, *own),
        "us-east-2": state("us-east-2", 2, endpoint("us-east-2", 2, "kms")),
    }
    desired = desired_rules("resolver-mesh", hubs, states)
    in_east1 = {r.domain for r in desired.rules if r.region == "us-east-1"}
    assert ("kms.us-east-2.amazonaws.com." in in_east1) is not cross_region
    assert "us-east-2.vpce.amazonaws.com." in in_east1
    assert any("vpce-cross" in note for note in desired.notes) is cross_region


def test_private_dns_names_drop_wildcards_and_what_cannot_be_forwarded() -> None:
    assert private_dns_names(
        [
            "*.s3.us-east-2.amazonaws.com",
            "s3.us-east-2.amazonaws.com.",  # the same domain once the wildcard is gone
            "eks-auth.us-east-2.api.aws",
            "bad..name",
            "*",
        ]
    ) == ("s3.us-east-2.amazonaws.com.", "eks-auth.us-east-2.api.aws.")


def test_only_aws_services_with_private_dns_that_are_available_have_names() -> None:
    kms = endpoint("us-east-2", 2, "kms")
    assert kms.is_aws_service
    assert kms.private_names == ("kms.us-east-2.amazonaws.com.",)
    assert replace(kms, private_dns=False).private_names == ()
    assert replace(kms, state="pendingAcceptance").private_names == ()
    unread = replace(kms, dns_names=(), names_unread="AccessDenied")
    assert (unread.private_names, unread.names_unknown) == ((), True)
    assert not replace(unread, private_dns=False).names_unknown  # it would answer nothing
    assert not replace(
        kms, service_name="com.amazonaws.vpce.us-east-2.vpce-svc-0a1b"
    ).is_aws_service


def test_names_that_cannot_be_read_keep_the_rules_made_for_them() -> None:
    """Unknown names are not names that are gone: the hub is protected like an unreadable one,
    so that nothing is deleted and the rules keep their targets."""
    hubs = parse_hubs([item("us-east-1", 1), item("us-east-2", 2, domains=SERVICES)], None)
    s3 = endpoint("us-east-2", 2, "s3")
    before = {"us-east-1": state("us-east-1", 1), "us-east-2": state("us-east-2", 2, s3)}
    states = converged("resolver-mesh", desired_rules("resolver-mesh", hubs, before), before)
    assert len(states["us-east-1"].rules) == 4  # three S3 names and the vpce domain

    unread = replace(s3, dns_names=(), names_unread="ClientError: UnauthorizedOperation")
    states["us-east-2"] = replace(states["us-east-2"], interface_endpoints=(unread,))
    desired = desired_rules("resolver-mesh", hubs, states)
    plan = make_plan("resolver-mesh", desired, states, set(states))

    assert "us-east-2" in desired.protected_targets
    assert plan.changes == ()
    assert desired.degraded == (
        "hub us-east-2: cannot read the private DNS names of com.amazonaws.us-east-2.s3"
        " (ClientError: UnauthorizedOperation); rules that forward to this hub are kept as"
        " they are",
    )
    read_again = replace(states["us-east-2"], interface_endpoints=(s3,))
    again = desired_rules("resolver-mesh", hubs, {**states, "us-east-2": read_again})
    assert again.protected_targets == frozenset()
    assert make_plan("resolver-mesh", again, states, set(states)).changes == ()


def test_unread_cross_region_names_are_a_note_and_forwarding_goes_on() -> None:
    hubs = parse_hubs([item("us-east-1", 1), item("us-east-2", 2, domains=SERVICES)], None)
    cross = endpoint("us-east-2", 1, "kms", id="vpce-cross", service_region="us-east-2")
    cross = replace(cross, dns_names=(), names_unread="ClientError: InvalidServiceName")
    states = {
        "us-east-1": state("us-east-1", 1, cross),
        "us-east-2": state("us-east-2", 2, endpoint("us-east-2", 2, "kms")),
    }
    desired = desired_rules("resolver-mesh", hubs, states)
    assert desired.protected_targets == frozenset()
    assert "kms.us-east-2.amazonaws.com." in {r.domain for r in desired.rules}
    assert desired.degraded[0].endswith("forwarded to their hubs as usual")
