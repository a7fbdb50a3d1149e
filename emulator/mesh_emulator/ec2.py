"""EC2 on the local emulator as AWS has it where moto 5.2.5 differs: service names, new Regions.

`new_region(name)`: a Region newer than botocore's lists: ec2 `DescribeRegions` reports it (moto
only lists botocore's Regions) and moto serves it (`MOTO_ALLOW_NONEXISTENT_REGION`, and two
availability zones), while the block runs; afterwards its state is dropped (a reset could not
rebuild it).

`DescribeVpcEndpointServices`: moto 5.2.5 makes every service's name up from its service name
(`<service>.<region>.amazonaws.com`), which AWS does not always do.
`install_service_name_extensions` patches
`moto.ec2.models.vpcs.VPCBackend.describe_vpc_endpoint_services` so that the Interface services
below answer with AWS's `PrivateDnsName` and `PrivateDnsNames` (the first name is the
`PrivateDnsName`); every other service keeps moto's answer. Sources (AWS documentation and the
endpoint rules botocore ships):

- s3: the PrivateLink for Amazon S3 guide, "Private DNS" and "Accessing buckets, access points,
  and Amazon S3 Control API operations from S3 interface endpoints"
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/privatelink-interface-endpoints.html):
  bucket, access point and control names, each with a wildcard.
- kinesis-streams: "Use Amazon Kinesis Data Streams with interface VPC endpoints"
  (https://docs.aws.amazon.com/streams/latest/dev/vpc.html): the API name `kinesis.<r>`.
- ecr.api, ecr.dkr: "Amazon ECR interface VPC endpoints (AWS PrivateLink)"
  (https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html): `api.ecr.<r>` and
  `*.dkr.ecr.<r>`; ECR's dual-stack names do not work through PrivateLink ("Making requests to
  Amazon ECR registries", https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-requests.html).
- eks-auth: the EKS Auth API has only the dual-stack name `eks-auth.<r>.api.aws` (EKS Pod
  Identity, https://docs.aws.amazon.com/eks/latest/userguide/pod-id-how-it-works.html; botocore's
  `eks-auth` endpoint rules).
- kms: "Create a VPC endpoint for AWS KMS"
  (https://docs.aws.amazon.com/kms/latest/developerguide/vpce-create-endpoint.html).
- sts: "AWS STS interface VPC endpoints"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_sts_vpce.html).
- ssm: "Improve the security of EC2 instances by using VPC endpoints for Systems Manager"
  (https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-create-vpc.html).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Service (after `com.amazonaws.<region>.`) -> its private DNS names, `{r}` for the Region.
PRIVATE_DNS_NAMES: dict[str, tuple[str, ...]] = {
    "s3": (
        "*.s3.{r}.amazonaws.com",
        "*.s3-accesspoint.{r}.amazonaws.com",
        "*.s3-control.{r}.amazonaws.com",
    ),
    "kinesis-streams": ("kinesis.{r}.amazonaws.com",),
    "ecr.api": ("api.ecr.{r}.amazonaws.com",),
    "ecr.dkr": ("*.dkr.ecr.{r}.amazonaws.com",),
    "eks-auth": ("eks-auth.{r}.api.aws",),
    "kms": ("kms.{r}.amazonaws.com",),
    "sts": ("sts.{r}.amazonaws.com",),
    "ssm": ("ssm.{r}.amazonaws.com",),
}
_MARKER = "_resolver_mesh_service_names"
_TAGS_MARKER = "_resolver_mesh_tag_lookup"
_lock = threading.Lock()


def aws_names(detail: dict[str, Any]) -> dict[str, Any]:
    """A service detail with AWS's private DNS names, when it is an Interface service listed
    in `PRIVATE_DNS_NAMES`; else the detail itself (moto's shared dicts are never changed)."""
    prefix, _, rest = str(detail.get("ServiceName", "")).partition(".amazonaws.")
    region, _, service = rest.partition(".")
    types = {t.get("ServiceType") for t in detail.get("ServiceType", [])}
    if prefix != "com" or service not in PRIVATE_DNS_NAMES or "Interface" not in types:
        return detail
    names = [name.format(r=region) for name in PRIVATE_DNS_NAMES[service]]
    return detail | {
        "PrivateDnsName": names[0],
        "PrivateDnsNames": [{"PrivateDnsName": name} for name in names],
    }


def install_service_name_extensions() -> None:
    """Patch moto's EC2 once; later calls (from any thread) do nothing."""
    from moto.ec2.models.vpcs import VPCBackend

    with _lock:
        if getattr(VPCBackend, _MARKER, False):
            return
        original = VPCBackend.describe_vpc_endpoint_services

        def describe_vpc_endpoint_services(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
            found = original(self, *args, **kwargs)
            return found | {"servicesDetails": [aws_names(d) for d in found["servicesDetails"]]}

        VPCBackend.describe_vpc_endpoint_services = describe_vpc_endpoint_services  # type: ignore[method-assign]
        setattr(VPCBackend, _MARKER, True)


def install_tag_lookup() -> None:
    """Patch moto's EC2 resources once so that a resource's tags are looked up by its id.

    moto 5.2.5 gives every tagged resource (`TaggedEC2Resource.get_tags`) the answer of
    `describe_tags(filters={"resource-id": [id]})`: a regular expression compiled for the id,
    then matched against every tagged resource of the account's Region. DescribeVpcs does it
    for each VPC it lists: a call's cost grew with its VPCs times the Region's tagged
    resources. The expression (`fnmatch.translate`) matches the id alone when it holds no
    wildcard (`*`, `?`, `[`), which no EC2 id holds: the answer is then the id's own tags, in
    their order, in new dicts equal to moto's; any other id still goes to moto."""
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    with _lock:
        if getattr(TaggedEC2Resource, _TAGS_MARKER, False):
            return
        scan = TaggedEC2Resource.get_tags

        def get_tags(self: Any) -> list[dict[str, str]]:
            resource_id = self.id
            if not isinstance(resource_id, str) or any(c in resource_id for c in "*?["):
                return scan(self)
            tags = self.ec2_backend.tags.get(resource_id)  # a defaultdict: .get makes nothing
            if not resource_id or not tags:
                return []
            kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
            return [
                {"resource_id": resource_id, "key": key, "value": value, "resource_type": kind}
                for key, value in list(tags.items())
            ]

        TaggedEC2Resource.get_tags = get_tags  # type: ignore[method-assign]
        setattr(TaggedEC2Resource, _TAGS_MARKER, True)


@contextmanager
def new_region(name: str, opt_in_status: str = "opt-in-not-required") -> Iterator[None]:
    """While the block runs, `name` is a Region of the account that botocore does not list:
    ec2 DescribeRegions reports it and moto serves requests signed for it."""
    from moto.core.base_backend import BackendDict, backend_lock
    from moto.ec2.models.availability_zones_and_regions import (
        Region,
        RegionsAndZonesBackend,
        Zone,
    )

    region = Region(name, f"ec2.{name}.amazonaws.com", opt_in_status)
    previous = os.environ.get("MOTO_ALLOW_NONEXISTENT_REGION")
    RegionsAndZonesBackend.regions.append(region)
    RegionsAndZonesBackend.zones[name] = [
        Zone(name=f"{name}{letter}", region_name=name, zone_id=f"{name}-az{n}")
        for n, letter in enumerate("ab", start=1)
    ]
    os.environ["MOTO_ALLOW_NONEXISTENT_REGION"] = "true"
    try:
        yield
    finally:
        RegionsAndZonesBackend.regions.remove(region)
        del RegionsAndZonesBackend.zones[name]
        with backend_lock:
            for service in BackendDict._instances:  # type: ignore[misc]
                for account in service.values():
                    account.pop(name, None)
        if previous is None:
            os.environ.pop("MOTO_ALLOW_NONEXISTENT_REGION", None)
        else:
            os.environ["MOTO_ALLOW_NONEXISTENT_REGION"] = previous
