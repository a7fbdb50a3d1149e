"""The Route 53 Resolver adapter for one Region: the reads and the five writes the mesh needs.

Invariants:
- Reads never depend on the number of rules beyond pagination: rules, associations and
  endpoints are listed, and only the hub's inbound endpoint IPs are read one endpoint at a time.
- Writes are idempotent towards retries and crashes: a create whose marker already exists
  returns the existing rule, an association that exists already (RSLVR-00802 with our own rule)
  is success, a disassociation or deletion of something already gone is success.
- The built-in recursive rule and rules being deleted are not returned as live rules.
- A rule shared with this account by a share accepted a moment ago may not be known here yet
  (RAM makes the share's resources available asynchronously): its association is tried again
  after each of `ARRIVAL_WAITS` while AWS answers ResourceNotFoundException, then given up
  (`RuleNotVisibleError`); the association is the probe, so a rule already visible costs no
  extra call. Where the VPC must first be freed of its own rule for the domain, the rule's
  arrival is read first (`await_arrival`), so that the VPC is never left without either.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from resolver_mesh.aws.calls import Caller, error_code, error_message
from resolver_mesh.models import (
    Change,
    ObservedAssociation,
    ObservedEndpoint,
    ObservedRule,
    RegionState,
    Target,
)
from resolver_mesh.names import MARKER, OWNER_TAG_KEY, TARGET_TAG_KEY, normalise_domain

PAGE_SIZE = 100
BUILT_IN_RULE_PREFIX = "rslvr-autodefined-rr-"
DELETE_RETRIES = 6
# Seconds waited before each new try to associate a rule whose share was just accepted
# (bounded: about 7 s in all, through the location's rate-limited caller).
ARRIVAL_WAITS = (1.0, 2.0, 4.0)


class ConflictError(Exception):
    """AWS refused an association because another owner's rule covers the domain in the VPC."""


class RuleNotVisibleError(Exception):
    """A rule shared with this account is still unknown here (its share was just accepted)."""


def _target(raw: dict[str, Any]) -> Target:
    return Target(raw.get("Ip") or raw.get("Ipv6") or "", int(raw.get("Port", 53)))


def _rule(raw: dict[str, Any]) -> ObservedRule:
    return ObservedRule(
        id=raw["Id"],
        domain=normalise_domain(raw.get("DomainName", "")),
        rule_type=raw.get("RuleType", ""),
        name=raw.get("Name", ""),
        status=raw.get("Status", ""),
        endpoint_id=raw.get("ResolverEndpointId"),
        targets=frozenset(_target(t) for t in raw.get("TargetIps") or ()),
        creator_request_id=raw.get("CreatorRequestId", ""),
        owner_id=raw.get("OwnerId", ""),
        share_status=raw.get("ShareStatus", ""),
        arn=raw.get("Arn", ""),
    )


def _target_ips(change: Change) -> list[dict[str, Any]]:
    return [
        {"Ipv6" if t.is_ipv6 else "Ip": t.ip, "Port": t.port}  # always send Port (moto needs it)
        for t in change.targets
    ]


class ResolverRegion:
    """Route 53 Resolver in one Region, through a rate-limited, retrying `Caller`."""

    def __init__(self, region: str, client: Any, caller: Caller) -> None:
        self.region = region
        self.client = client
        self.call = caller

    # --- reads -------------------------------------------------------------------------------

    def read(
        self,
        *,
        rules: bool,
        endpoints: bool,
        inbound_ids: Collection[str] = (),
        read_tags: bool = False,
    ) -> RegionState:
        """What the planner needs from this Region.

        Associations are read where rules were read and there is a hub or any rule at all: a
        swept Region without rules needs one call, not two.
        """
        found_rules = self.list_rules(read_tags) if rules else ()
        associations = self.list_associations() if rules and (endpoints or found_rules) else ()
        found_endpoints = self.list_endpoints(inbound_ids) if endpoints else ()
        return RegionState(self.region, found_rules, associations, found_endpoints)

    def list_rules(self, read_tags: bool = False) -> tuple[ObservedRule, ...]:
        """Every rule but the built-in one; with `read_tags`, the owner and target tags of the
        FORWARD rules without a mesh marker (one call each: only when adoption is enabled)."""
        raw = self.call.pages(
            self.client.list_resolver_rules, "ResolverRules", MaxResults=PAGE_SIZE
        )
        found = []
        for listed in raw:
            if listed["Id"].startswith(BUILT_IN_RULE_PREFIX):
                continue
            rule = _rule(listed)
            unmarked = not rule.creator_request_id.startswith(f"{MARKER}/")
            own = rule.share_status != "SHARED_WITH_ME"  # tags of shared rules are the owner's
            forward = rule.rule_type == "FORWARD" and rule.status != "DELETING"
            if read_tags and unmarked and own and forward:
                tags = self.tags(listed["Arn"])
                rule = replace(
                    rule, owner_tag=tags.get(OWNER_TAG_KEY), target_tag=tags.get(TARGET_TAG_KEY)
                )
            found.append(rule)
        return tuple(found)

    def tags(self, arn: str) -> dict[str, str]:
        raw = self.call.pages(
            self.client.list_tags_for_resource, "Tags", ResourceArn=arn, MaxResults=PAGE_SIZE
        )
        return {tag["Key"]: tag["Value"] for tag in raw}

    def list_associations(self) -> tuple[ObservedAssociation, ...]:
        raw = self.call.pages(
            self.client.list_resolver_rule_associations,
            "ResolverRuleAssociations",
            MaxResults=PAGE_SIZE,
        )
        return tuple(
            ObservedAssociation(a["Id"], a["ResolverRuleId"], a["VPCId"], a.get("Status", ""))
            for a in raw
        )

    def list_endpoints(self, inbound_ids: Collection[str]) -> tuple[ObservedEndpoint, ...]:
        """All endpoints of the Region; ATTACHED IPs only for the inbound ids asked for."""
        found = []
        raw = self.call.pages(
            self.client.list_resolver_endpoints, "ResolverEndpoints", MaxResults=PAGE_SIZE
        )
        for endpoint in raw:
            ips: tuple[str, ...] = ()
            if endpoint["Id"] in inbound_ids and endpoint.get("Direction") == "INBOUND":
                ips = self.attached_ips(endpoint["Id"])
            found.append(
                ObservedEndpoint(
                    id=endpoint["Id"],
                    direction=endpoint.get("Direction", ""),
                    status=endpoint.get("Status", ""),
                    vpc_id=endpoint.get("HostVPCId", ""),
                    attached_ips=ips,
                )
            )
        return tuple(found)

    def attached_ips(self, endpoint_id: str) -> tuple[str, ...]:
        raw = self.call.pages(
            self.client.list_resolver_endpoint_ip_addresses,
            "IpAddresses",
            ResolverEndpointId=endpoint_id,
            MaxResults=PAGE_SIZE,
        )
        return tuple(
            sorted(
                ip.get("Ip") or ip.get("Ipv6") or ""
                for ip in raw
                if ip.get("Status") == "ATTACHED" and (ip.get("Ip") or ip.get("Ipv6"))
            )
        )

    # --- writes ------------------------------------------------------------------------------

    def create_rule(self, change: Change, markers: Sequence[str], mesh_id: str) -> str:
        """Create a FORWARD rule with our marker and owner tag; returns its id.

        `ResourceExistsException` means the marker is taken: by the rule itself (a retried or
        concurrent create), which is then returned, or by a rule deleted since, in which case
        the next marker is tried.
        """
        for marker in markers:
            try:
                response = self.call(
                    self.client.create_resolver_rule,
                    CreatorRequestId=marker,
                    Name=change.name,
                    RuleType="FORWARD",
                    DomainName=change.domain,
                    TargetIps=_target_ips(change),
                    ResolverEndpointId=change.endpoint_id,
                    Tags=[
                        {"Key": OWNER_TAG_KEY, "Value": mesh_id},
                        {"Key": TARGET_TAG_KEY, "Value": change.target_region or ""},
                    ],
                )
                return str(response["ResolverRule"]["Id"])
            except ClientError as error:
                if error_code(error) != "ResourceExistsException":
                    raise
                existing = self.call(
                    self.client.list_resolver_rules,
                    Filters=[{"Name": "CreatorRequestId", "Values": [marker]}],
                )["ResolverRules"]
                live = [r for r in existing if r.get("Status") != "DELETING"]
                if live:
                    return str(live[0]["Id"])
        raise RuntimeError(f"every marker for {change.domain} is taken: {', '.join(markers)}")

    def adopt_rule(self, rule_id: str, mesh_id: str, target_region: str) -> None:
        """Make an unowned rule ours by tagging it with our owner and its target Region."""
        arn = self.call(self.client.get_resolver_rule, ResolverRuleId=rule_id)["ResolverRule"][
            "Arn"
        ]
        self.call(
            self.client.tag_resource,
            ResourceArn=arn,
            Tags=[
                {"Key": OWNER_TAG_KEY, "Value": mesh_id},
                {"Key": TARGET_TAG_KEY, "Value": target_region},
            ],
        )

    def update_rule(self, change: Change) -> None:
        """Change name and outbound endpoint, and the targets only when the change carries them."""
        config: dict[str, Any] = {"Name": change.name, "ResolverEndpointId": change.endpoint_id}
        if change.targets:
            config["TargetIps"] = _target_ips(change)
        self.call(self.client.update_resolver_rule, ResolverRuleId=change.rule_id, Config=config)

    def associate(self, rule_id: str, vpc_id: str, name: str) -> None:
        try:
            self.call(
                self.client.associate_resolver_rule,
                ResolverRuleId=rule_id,
                VPCId=vpc_id,
                Name=name,
            )
        except ClientError as error:
            if error_code(error) == "InvalidRequestException" and self._is_associated(
                rule_id, vpc_id
            ):
                return  # a retried association that had in fact succeeded
            message = error_message(error)
            if "RSLVR-00802" in message or "same domain name" in message:
                raise ConflictError(message) from error
            raise

    def associate_arriving(self, rule_id: str, vpc_id: str, name: str) -> None:
        """Associate a rule of another account whose share this account has just accepted,
        waiting (`ARRIVAL_WAITS`) while AWS does not know the rule here yet; raises
        `RuleNotVisibleError` when it never showed up."""
        for wait in (0.0, *ARRIVAL_WAITS):
            if wait:
                self.call.sleep(wait)
            try:
                self.associate(rule_id, vpc_id, name)
                return
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":
                    raise
        raise self._not_visible(rule_id)

    def await_arrival(self, rule_id: str) -> None:
        """Return once a rule of another account whose share this account has just accepted
        is listed here, waiting (`ARRIVAL_WAITS`) while it is not; raises
        `RuleNotVisibleError` when it never showed up. Reads only: a VPC is freed for the rule
        (its own rule for the domain disassociated) only once the rule can take its place."""
        for wait in (0.0, *ARRIVAL_WAITS):
            if wait:
                self.call.sleep(wait)
            listed = self.call.pages(self.client.list_resolver_rules, "ResolverRules")
            if any(rule["Id"] == rule_id for rule in listed):
                return
        raise self._not_visible(rule_id)

    def _not_visible(self, rule_id: str) -> RuleNotVisibleError:
        waited = sum(ARRIVAL_WAITS)
        return RuleNotVisibleError(
            f"{rule_id} is not visible in {self.region} yet, {waited:g} s after its share was"
            " accepted"
        )

    def _is_associated(self, rule_id: str, vpc_id: str) -> bool:
        raw = self.call.pages(
            self.client.list_resolver_rule_associations,
            "ResolverRuleAssociations",
            Filters=[{"Name": "ResolverRuleId", "Values": [rule_id]}],
        )
        return any(a["VPCId"] == vpc_id and a.get("Status") != "DELETING" for a in raw)

    def disassociate(self, rule_id: str, vpc_id: str) -> None:
        try:
            self.call(self.client.disassociate_resolver_rule, ResolverRuleId=rule_id, VPCId=vpc_id)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise

    def delete_rule(self, rule_id: str) -> None:
        """Delete; waits (bounded) while AWS finishes disassociations that are still DELETING."""
        for attempt in range(1, DELETE_RETRIES + 1):
            try:
                self.call(self.client.delete_resolver_rule, ResolverRuleId=rule_id)
                return
            except ClientError as error:
                code = error_code(error)
                if code == "ResourceNotFoundException":
                    return
                if code != "ResourceInUseException" or attempt == DELETE_RETRIES:
                    raise
                self.call.sleep(2.0 * attempt)
