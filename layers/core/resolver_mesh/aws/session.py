"""Clients, callers and adapters for one process, shared by threads and warm invocations.

Invariants:
- One boto3 client per (service, Region), created once; botocore's own retries are off, so the
  `Caller` of that Region alone decides about retries and rate.
- One `Caller` (and so one rate limit) per Region and budget, whatever the number of threads.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config

from resolver_mesh.aws.calls import Caller, RateLimiter
from resolver_mesh.aws.hubs import HubsTable
from resolver_mesh.aws.resolver import ResolverRegion
from resolver_mesh.config import ConfigError, Settings
from resolver_mesh.models import InterfaceEndpoint


class Aws:
    """Everything that talks to AWS, built lazily and cached."""

    def __init__(self, settings: Settings, session: boto3.session.Session | None = None) -> None:
        self.settings = settings
        self.session = session or boto3.session.Session()
        home = settings.home_region or self.session.region_name
        if not home:
            raise ConfigError("no home Region: set HOME_REGION or AWS_REGION (or --home-region)")
        self.home_region: str = home
        self._config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=min(5.0, settings.call_timeout_seconds),
            read_timeout=settings.call_timeout_seconds,
            max_pool_connections=4,
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._callers: dict[str, Caller] = {}
        self._known_regions: frozenset[str] | None = None
        self._lock = threading.Lock()

    def client(self, service: str, region: str) -> Any:
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                self._clients[key] = self.session.client(
                    service, region_name=region, config=self._config
                )
            return self._clients[key]

    def caller(self, region: str, budget: str = "route53resolver") -> Caller:
        """The caller of a Region's rate budget: the Resolver API's by default; the hubs table
        has a budget of its own, so that reading it takes nothing from the Resolver's."""
        with self._lock:
            key = f"{budget}:{region}"
            if key not in self._callers:
                limiter = RateLimiter(self.settings.calls_per_second)
                self._callers[key] = Caller(limiter, self.settings.max_attempts)
            return self._callers[key]

    def resolver(self, region: str) -> ResolverRegion:
        return ResolverRegion(region, self.client("route53resolver", region), self.caller(region))

    def hubs_table(self) -> HubsTable:
        home = self.home_region
        return HubsTable(
            self.settings.table_name, self.client("dynamodb", home), self.caller(home, "dynamodb")
        )

    def interface_endpoints(self, region: str, vpc_id: str) -> tuple[InterfaceEndpoint, ...]:
        """The live interface VPC endpoints of one VPC (DescribeVpcEndpoints, every page)."""
        ec2 = self.client("ec2", region)
        raw = self.caller(region).pages(
            ec2.describe_vpc_endpoints,
            "VpcEndpoints",
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}],
        )
        return tuple(
            InterfaceEndpoint(
                id=str(endpoint["VpcEndpointId"]),
                vpc_id=str(endpoint.get("VpcId", vpc_id)),
                service_name=str(endpoint.get("ServiceName", "")),
                private_dns=bool(endpoint.get("PrivateDnsEnabled")),
                state=str(endpoint.get("State", "")),
                service_region=endpoint.get("ServiceRegion"),
            )
            for endpoint in raw
            if endpoint.get("VpcEndpointType") == "Interface"
            and str(endpoint.get("State", "")).lower() not in ("deleted", "deleting", "failed")
        )

    def known_regions(self) -> frozenset[str]:
        """Every Region botocore knows Route 53 Resolver in, over all partitions (no call;
        worked out once per process)."""
        if self._known_regions is None:
            self._known_regions = frozenset(
                region
                for partition in self.session.get_available_partitions()
                for region in self.session.get_available_regions("route53resolver", partition)
            )
        return self._known_regions

    def enabled_regions(self) -> list[str]:
        """The account's enabled Regions, for the full-resync sweep."""
        ec2 = self.client("ec2", self.home_region)
        regions = self.caller(self.home_region)(ec2.describe_regions, AllRegions=False)
        return sorted(r["RegionName"] for r in regions["Regions"])

    def call_counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        with self._lock:
            for caller in self._callers.values():
                total.update(caller.counts)
        return total
