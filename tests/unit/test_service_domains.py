"""`{services}` domains: a hub forwards the private DNS names of its interface endpoints."""

from __future__ import annotations

from typing import Any

import pytest

from resolver_mesh.desired import HubSet, desired_rules, parse_hubs, target_domains
from resolver_mesh.models import HubItem, InterfaceEndpoint, ObservedEndpoint, RegionState

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


def endpoint(region: str, n: int, service: str, **fields: Any) -> InterfaceEndpoint:
    values: dict[str, Any] = {
        "id": f"vpce-{service}-{region}",
        "vpc_id": f"vpc-{n:017x}",
        "service_name": f"com.amazonaws.{region}.{service}",
        "private_dns": True,
        "state": "available",
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
        endpoint("us-east-2", 2, "sqs", private_dns=False),
        endpoint("us-east-2", 2, "sts", state="pending"),
        endpoint("us-east-2", 2, "ssm", vpc_id="vpc-00000000000000999"),  # a workload VPC's
    )
    assert target_domains(hub, observed) == (
        "us-east-2.vpce.amazonaws.com.",
        "s3.us-east-2.amazonaws.com.",
        "s3-control.us-east-2.amazonaws.com.",
        "s3-accesspoint.us-east-2.amazonaws.com.",
        "kms.us-east-2.amazonaws.com.",
        "api.ecr.us-east-2.amazonaws.com.",
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
