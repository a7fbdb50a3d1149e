"""Make moto's Route 53 Resolver behave like AWS where resolver-mesh depends on it.

moto 5.2.5 lacks or skips the following, so `install_resolver_extensions` patches them onto
`moto.route53resolver` (backend class and response class; both `mock_aws` and an in-process
`ThreadedMotoServer` dispatch through them, and a `/moto-api/reset` keeps them):

- `UpdateResolverRule` is not implemented: added (Name, TargetIps, ResolverEndpointId).
- `AssociateResolverRule` only rejects the same rule twice in a VPC. AWS rejects any second rule
  for the same domain in a VPC (`RSLVR-00802`, naming the conflicting rule) and a FORWARD rule
  whose targets are the IPs of an INBOUND endpoint in that VPC (`RSLVR-00804`).
- `CreateResolverRule` accepts more than 6 TargetIps and a FORWARD rule on an INBOUND endpoint;
  AWS rejects both (InvalidParameterException / InvalidRequestException).
- `CreateResolverRule` appends a dot to a DomainName that already ends with one
  (`example.com.` came back as `example.com..`); AWS stores one trailing dot.
- RAM sharing of rules across accounts (AssociateResourceShare, invitations, rules shared with
  an account listed as `SHARED_WITH_ME` and associable there): `mesh_emulator.ram`.

Rule Names are already validated by moto (64 characters, AWS pattern, ValidationException) and the
same check is applied to `UpdateResolverRule`.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from ipaddress import IPv4Address, ip_address
from typing import Any

MAX_TARGET_IPS = 6
_MARKER = "_resolver_mesh_extensions"
_lock = threading.Lock()


def _normalise(domain: str) -> str:
    return domain.strip().lower().rstrip(".") + "."


def install_resolver_extensions() -> None:
    """Patch moto's route53resolver once; later calls (from any thread) do nothing."""
    from moto.route53resolver import exceptions as exc
    from moto.route53resolver.models import Route53ResolverBackend
    from moto.route53resolver.responses import Route53ResolverResponse
    from moto.route53resolver.validations import validate_args

    with _lock:
        if getattr(Route53ResolverBackend, _MARKER, False):
            return

        original_create = Route53ResolverBackend.create_resolver_rule
        original_associate = Route53ResolverBackend.associate_resolver_rule

        def check_targets(target_ips: list[dict[str, Any]]) -> None:
            if len(target_ips) > MAX_TARGET_IPS:
                raise exc.InvalidParameterException(
                    f"A rule can have at most {MAX_TARGET_IPS} target IP addresses, "
                    f"got {len(target_ips)}"
                )
            validate_args([("targetIps.port", target) for target in target_ips])
            for target in target_ips:
                try:
                    if not isinstance(ip_address(target.get("Ip", "")), IPv4Address):
                        raise ValueError
                except ValueError as error:
                    raise exc.InvalidParameterException(
                        f"Invalid IPv4 address: '{target.get('Ip')}'"
                    ) from error

        def check_endpoint(backend: Any, rule_type: str, endpoint_id: str | None) -> None:
            endpoint = backend.resolver_endpoints.get(endpoint_id) if endpoint_id else None
            if endpoint_id and endpoint is None:
                raise exc.ResourceNotFoundException(
                    f"Resolver endpoint with ID '{endpoint_id}' does not exist."
                )
            if rule_type == "FORWARD" and endpoint is not None and endpoint.direction != "OUTBOUND":
                raise exc.InvalidRequestException(
                    f"Resolver endpoint '{endpoint_id}' is not an OUTBOUND endpoint; "
                    "a FORWARD rule needs an OUTBOUND endpoint"
                )

        def create_resolver_rule(
            self: Any,
            region: str,
            creator_request_id: str,
            name: str,
            rule_type: str,
            domain_name: str,
            target_ips: list[dict[str, Any]],
            resolver_endpoint_id: str,
            tags: list[dict[str, str]],
        ) -> Any:
            check_targets(target_ips or [])
            check_endpoint(self, rule_type, resolver_endpoint_id)
            if domain_name and domain_name != ".":
                domain_name = domain_name.rstrip(".")  # moto appends the dot itself
            return original_create(
                self,
                region=region,
                creator_request_id=creator_request_id,
                name=name,
                rule_type=rule_type,
                domain_name=domain_name,
                target_ips=target_ips,
                resolver_endpoint_id=resolver_endpoint_id,
                tags=tags,
            )

        def update_resolver_rule(self: Any, resolver_rule_id: str, config: dict[str, Any]) -> Any:
            self._validate_resolver_rule_id(resolver_rule_id)
            rule = self.resolver_rules[resolver_rule_id]
            name = config.get("Name")
            target_ips = config.get("TargetIps")
            endpoint_id = config.get("ResolverEndpointId")
            validate_args([("name", name), ("resolverEndpointId", endpoint_id)])
            if target_ips is not None:
                check_targets(target_ips)
            check_endpoint(self, rule.rule_type, endpoint_id)
            if name is not None:
                rule.name = name
            if target_ips is not None:
                rule.target_ips = target_ips
            if endpoint_id is not None:
                rule.resolver_endpoint_id = endpoint_id
            rule.modification_time = datetime.now(UTC).isoformat()
            return rule

        def associate_resolver_rule(
            self: Any, resolver_rule_id: str, name: str, vpc_id: str
        ) -> Any:
            rule = self.resolver_rules.get(resolver_rule_id)
            if rule is not None:
                domain = _normalise(rule.domain_name)
                for association in self.resolver_rule_associations.values():
                    other = self.resolver_rules.get(association.resolver_rule_id)
                    if (
                        association.vpc_id == vpc_id
                        and association.status != "DELETING"
                        and other is not None
                        and _normalise(other.domain_name) == domain
                    ):
                        raise exc.InvalidRequestException(
                            "[RSLVR-00802] Cannot associate rules with same domain name with "
                            f"same VPC. Conflict with resolver rule '{other.id}'"
                        )
                targets = {t.get("Ip") for t in rule.target_ips or []}
                for endpoint in self.resolver_endpoints.values():
                    inbound_ips = {ip.get("Ip") for ip in endpoint.ip_addresses}
                    if (
                        rule.rule_type == "FORWARD"
                        and endpoint.direction == "INBOUND"
                        and endpoint.host_vpc_id == vpc_id
                        and targets & inbound_ips
                    ):
                        raise exc.InvalidRequestException(
                            "[RSLVR-00804] Cannot associate a rule with the VPC that hosts "
                            f"inbound endpoint '{endpoint.id}', which is a target of the rule"
                        )
            return original_associate(
                self, resolver_rule_id=resolver_rule_id, name=name, vpc_id=vpc_id
            )

        def update_resolver_rule_response(self: Any) -> str:
            rule = self.route53resolver_backend.update_resolver_rule(
                resolver_rule_id=self._get_param("ResolverRuleId"),
                config=self._get_param("Config") or {},
            )
            return json.dumps({"ResolverRule": rule.description()})

        patches: list[tuple[type, str, Any]] = [
            (Route53ResolverBackend, "create_resolver_rule", create_resolver_rule),
            (Route53ResolverBackend, "update_resolver_rule", update_resolver_rule),
            (Route53ResolverBackend, "associate_resolver_rule", associate_resolver_rule),
            (Route53ResolverResponse, "update_resolver_rule", update_resolver_rule_response),
            (Route53ResolverBackend, _MARKER, True),
        ]
        for cls, attribute, value in patches:
            setattr(cls, attribute, value)
