"""Demo topology for the local emulator: hub VPCs, Resolver endpoints and the hubs table.

Every function takes a `client_factory(service, region) -> boto3 client`, so the caller decides
where the calls go (the emulator in tests and demos). The resources mirror a real hub: a VPC with
DNS support, two subnets in two Availability Zones, a security group open to DNS from 10.0.0.0/8,
an INBOUND and (optionally) an OUTBOUND Resolver endpoint with two IPs each, interface VPC
endpoints with private DNS, and optional workload VPCs.

Invariants:
- Each known Region gets its own block of four /16 networks (hub + up to 3 workload VPCs), so the
  default CIDRs of different Regions never overlap. Unknown Regions fall into a hashed block above
  the known ones (unlikely, but not impossible, to collide with each other).
- Resolver endpoints always carry a `Name` (moto fails to list a mix of named and unnamed ones).
"""

from __future__ import annotations

import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_network
from typing import Any

import boto3

from resolver_mesh.aws.calls import Caller, RateLimiter
from resolver_mesh.aws.hubs import HubsTable

ClientFactory = Callable[[str, str], Any]


class CachedClients:
    """A `ClientFactory`: the clients of one boto3 session, one per (service, Region), made on
    first use; safe to share between threads."""

    def __init__(self, session: Any, endpoint_url: str | None = None) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[service, region] = self.session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url
                )
            return self._clients[service, region]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


DEMO_NAME = "resolver-mesh-demo"
DNS_CLIENTS_CIDR = "10.0.0.0/8"
MAX_WORKLOAD_VPCS = 3
_BLOCK = 4  # /16 networks reserved per Region: the hub and up to 3 workload VPCs

# Append only: a Region's position fixes its CIDR block.
KNOWN_REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1",
    "eu-south-1", "eu-south-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-7", "ap-south-1", "ap-south-2", "ap-east-1", "sa-east-1", "af-south-1",
    "me-south-1", "me-central-1", "il-central-1", "mx-central-1",
)  # fmt: skip


@dataclass(frozen=True)
class HubResources:
    """What `build_hub` created in one Region."""

    region: str
    vpc_id: str
    inbound_endpoint_id: str
    outbound_endpoint_id: str | None
    subnet_ids: tuple[str, ...]
    interface_endpoint_ids: dict[str, str]
    workload_vpc_ids: tuple[str, ...]


def default_cidr(region: str) -> str:
    """The hub CIDR of a Region: `10.<4*index>.0.0/16`, stable per Region."""
    if region in KNOWN_REGIONS:
        index = KNOWN_REGIONS.index(region)
    else:
        spare = 256 // _BLOCK - len(KNOWN_REGIONS)
        index = len(KNOWN_REGIONS) + zlib.crc32(region.encode()) % spare
    return f"10.{index * _BLOCK}.0.0/16"


def _tags(resource_type: str, name: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": name}]}]


def _create_vpc(ec2: Any, cidr: str, name: str) -> str:
    vpc_id: str = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=_tags("vpc", name))["Vpc"][
        "VpcId"
    ]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    return vpc_id


def _create_endpoint(
    resolver: Any, direction: str, name: str, sg_id: str, ips: list[dict[str, str]]
) -> str:
    endpoint_id: str = resolver.create_resolver_endpoint(
        CreatorRequestId=f"{name}-{uuid.uuid4().hex}",
        Name=name,
        SecurityGroupIds=[sg_id],
        Direction=direction,
        IpAddresses=ips,
        Tags=[{"Key": "Name", "Value": name}],
    )["ResolverEndpoint"]["Id"]
    return endpoint_id


def _vpc_with_dns_subnets(
    ec2: Any, network: IPv4Network, name: str
) -> tuple[str, tuple[str, ...], str, Callable[[int], list[dict[str, str]]]]:
    """A VPC with two subnets in two zones and a DNS security group; and the `IpAddresses` of
    a Resolver endpoint at host number `n` of each subnet."""
    vpc_id = _create_vpc(ec2, str(network), name)
    zones = [
        zone["ZoneName"]
        for zone in ec2.describe_availability_zones()["AvailabilityZones"]
        if zone.get("ZoneType", "availability-zone") == "availability-zone"
    ][:2]
    subnets = list(network.subnets(new_prefix=24))[:2]
    subnet_ids = tuple(
        ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=str(subnet),
            AvailabilityZone=zone,
            TagSpecifications=_tags("subnet", f"{name}-{zone}"),
        )["Subnet"]["SubnetId"]
        for subnet, zone in zip(subnets, zones, strict=True)
    )
    sg_id: str = ec2.create_security_group(
        GroupName=f"{name}-dns",
        Description="DNS from the mesh",
        VpcId=vpc_id,
        TagSpecifications=_tags("security-group", f"{name}-dns"),
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg_id,
        IpPermissions=[
            {
                "IpProtocol": protocol,
                "FromPort": 53,
                "ToPort": 53,
                "IpRanges": [{"CidrIp": DNS_CLIENTS_CIDR, "Description": "DNS"}],
            }
            for protocol in ("tcp", "udp")
        ],
    )

    def endpoint_ips(host: int) -> list[dict[str, str]]:
        return [
            {"SubnetId": sid, "Ip": str(net.network_address + host)}
            for sid, net in zip(subnet_ids, subnets, strict=True)
        ]

    return vpc_id, subnet_ids, sg_id, endpoint_ips


@dataclass(frozen=True)
class SpokeResources:
    """What `build_spoke` created: a workload VPC with its own outbound endpoint."""

    region: str
    vpc_id: str
    outbound_endpoint_id: str


def build_spoke(client_factory: ClientFactory, region: str, cidr: str, name: str) -> SpokeResources:
    """Create a spoke in `region`: a VPC (`cidr`, /22 or larger) with an OUTBOUND endpoint."""
    network = ip_network(cidr)
    if not isinstance(network, IPv4Network) or network.prefixlen > 22:
        raise ValueError(f"spoke CIDR must be an IPv4 network of /22 or larger, got {network}")
    ec2 = client_factory("ec2", region)
    vpc_id, _, sg_id, endpoint_ips = _vpc_with_dns_subnets(ec2, network, f"{DEMO_NAME}-{name}")
    outbound = _create_endpoint(
        client_factory("route53resolver", region),
        "OUTBOUND",
        f"{DEMO_NAME}-{name}-outbound",
        sg_id,
        endpoint_ips(11),
    )
    return SpokeResources(region, vpc_id, outbound)


def assumed_clients(
    client_factory: ClientFactory, role_arn: str, external_id: str | None, endpoint_url: str | None
) -> CachedClients:
    """The clients of another account: `role_arn` assumed through `client_factory`'s STS (the
    local emulator keeps each account's resources apart)."""
    arguments = {"RoleArn": role_arn, "RoleSessionName": DEMO_NAME}
    if external_id:
        arguments["ExternalId"] = external_id
    credentials = client_factory("sts", "us-east-1").assume_role(**arguments)["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return CachedClients(session, endpoint_url)


def build_hub(
    client_factory: ClientFactory,
    region: str,
    cidr: str | None = None,
    outbound: bool = True,
    services: tuple[str, ...] = ("s3",),
    workload_vpcs: int = 0,
) -> HubResources:
    """Create a hub VPC with Resolver endpoints and interface endpoints in `region`.

    `cidr` defaults to `default_cidr(region)`; workload VPCs take the next /16 networks.
    """
    if not 0 <= workload_vpcs <= MAX_WORKLOAD_VPCS:
        raise ValueError(f"workload_vpcs must be 0..{MAX_WORKLOAD_VPCS}, got {workload_vpcs}")
    network = ip_network(cidr or default_cidr(region))
    if not isinstance(network, IPv4Network) or network.prefixlen > 22:
        raise ValueError(f"hub CIDR must be an IPv4 network of /22 or larger, got {network}")
    ec2 = client_factory("ec2", region)
    resolver = client_factory("route53resolver", region)
    hub_name = f"{DEMO_NAME}-hub"
    vpc_id, subnet_ids, sg_id, endpoint_ips = _vpc_with_dns_subnets(ec2, network, hub_name)
    inbound_id = _create_endpoint(
        resolver, "INBOUND", f"{hub_name}-inbound", sg_id, endpoint_ips(10)
    )
    outbound_id = (
        _create_endpoint(resolver, "OUTBOUND", f"{hub_name}-outbound", sg_id, endpoint_ips(11))
        if outbound
        else None
    )

    interface_endpoint_ids = {
        service: ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=vpc_id,
            ServiceName=f"com.amazonaws.{region}.{service}",
            SubnetIds=list(subnet_ids),
            SecurityGroupIds=[sg_id],
            PrivateDnsEnabled=True,
            TagSpecifications=_tags("vpc-endpoint", f"{hub_name}-{service}"),
        )["VpcEndpoint"]["VpcEndpointId"]
        for service in services
    }

    workload_vpc_ids = tuple(
        _create_vpc(
            ec2,
            f"{network.network_address + (i + 1) * network.num_addresses}/{network.prefixlen}",
            f"{DEMO_NAME}-workload-{i + 1}",
        )
        for i in range(workload_vpcs)
    )
    return HubResources(
        region=region,
        vpc_id=vpc_id,
        inbound_endpoint_id=inbound_id,
        outbound_endpoint_id=outbound_id,
        subnet_ids=subnet_ids,
        interface_endpoint_ids=interface_endpoint_ids,
        workload_vpc_ids=workload_vpc_ids,
    )


def create_hubs_table(
    client_factory: ClientFactory, region: str, table_name: str, mesh_id: str = "resolver-mesh"
) -> None:
    """Create the hubs table as `table create` does (`HubsTable.create`) unless it exists."""
    caller = Caller(RateLimiter(1000.0))
    HubsTable(table_name, client_factory("dynamodb", region), caller).create(mesh_id)


def spoke_item(spoke: SpokeResources, mode: str, **extra: Any) -> dict[str, Any]:
    """The `spokes` entry for `spoke` in `mode` (`direct` or `central`), merged with `extra`
    (`parent_domain`, `account_id`, `role_arn`, ...)."""
    return {
        "vpc_id": spoke.vpc_id,
        "outbound_endpoint_id": spoke.outbound_endpoint_id,
        "mode": mode,
        **extra,
    }


def hub_item(hub: HubResources, **extra: Any) -> dict[str, Any]:
    """The plain hub item for `hub` (as stored in the hubs table), merged with `extra`."""
    item: dict[str, Any] = {
        "region": hub.region,
        "vpc_id": hub.vpc_id,
        "inbound_endpoint_id": hub.inbound_endpoint_id,
    }
    if hub.outbound_endpoint_id is not None:
        item["outbound_endpoint_id"] = hub.outbound_endpoint_id
    if hub.workload_vpc_ids:
        item["vpc_ids"] = list(hub.workload_vpc_ids)
    item.update(extra)
    return item


def create_unmanaged_rule(
    client_factory: ClientFactory,
    region: str,
    domain: str,
    outbound_endpoint_id: str,
    target_ip: str,
    vpc_id: str | None = None,
    name: str = "someone-elses-rule",
) -> str:
    """Create (and optionally associate) a FORWARD rule that resolver-mesh does not own."""
    resolver = client_factory("route53resolver", region)
    rule_id: str = resolver.create_resolver_rule(
        CreatorRequestId=f"someone-else-{uuid.uuid4().hex}",
        Name=name,
        RuleType="FORWARD",
        DomainName=domain,
        TargetIps=[{"Ip": target_ip, "Port": 53}],
        ResolverEndpointId=outbound_endpoint_id,
    )["ResolverRule"]["Id"]
    if vpc_id is not None:
        resolver.associate_resolver_rule(ResolverRuleId=rule_id, VPCId=vpc_id, Name=name)
    return rule_id
