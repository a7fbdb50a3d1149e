"""Settings, read from environment variables (the Lambda and the CLI share them).

| variable | default | meaning |
|---|---|---|
| `HUBS_TABLE_NAME` | `resolver-mesh-hubs` | the DynamoDB table of hub items |
| `MESH_ID` | `resolver-mesh` | this mesh's id, written into every rule's ownership marker |
| `HOME_REGION` | boto3's Region (`AWS_REGION`) | the Region of the hubs table |
| `MESH_REGIONS` | (empty) | Regions a full resync sweeps; empty: the partition's enabled ones |
| `EXCLUDED_REGIONS` | (empty) | Regions never read or written (e.g. denied by an SCP) |
| `CALLS_PER_SECOND` | `5` | AWS calls per second per Region (the Resolver API's default quota) |
| `MAX_ATTEMPTS` | `6` | attempts per AWS call on throttling, 5xx, connection errors (refused: 2) |
| `CALL_TIMEOUT_SECONDS` | `20` | how long one AWS call may take before it is retried |
| `MAX_CHANGE_FRACTION` | `0.5` | refuse plans deleting or retargeting more than this share |
| `MIN_RULES_FOR_GUARD` | `10` | the fraction guard applies from this many managed rules on |
| `ADOPT_UNMANAGED` | `false` | take over unowned rules for domains that have no rule of ours |
| `READINESS_WAIT_SECONDS` | `120` | how long an event-driven run keeps looking at a new endpoint |
| `READINESS_POLL_SECONDS` | `10` | how often it looks |
| `MEMBER_ROLES` | (empty) | role ARNs (`arn|external id`) of accounts always swept |
| `MEMBER_OUS` | (empty) | OU ids (`ou-...`) or root ids (`r-...`): ACTIVE accounts there |
| `MEMBER_EXTERNAL_ID` | (empty) | the external id of the member role of `MEMBER_OUS` accounts |
| `DELIVERY` | `rules` | how hub VPCs get the rules: `rules` (associated one by one) or `profile` |

Invariant: a setting that cannot be parsed is a `ConfigError` naming the variable, never a default.
Region lists are checked for their shape here; `Aws.check_settings_regions` checks that AWS knows
them (that needs the home Region's partition).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from resolver_mesh.models import DELIVERIES, AccountAccess, Delivery, ExternalId
from resolver_mesh.names import MESH_ID_PATTERN, REGION_PATTERN
from resolver_mesh.safety import Guard

MEMBER_ROLE_PREFIX = "resolver-mesh-member-"  # member.yaml's role name, before the mesh id
MAX_ROLE_NAME = 64  # IAM's longest role name (IAM User Guide, IAM object quotas)

# The shapes of AWS Organizations parent ids (API reference: `ListAccountsForParent.ParentId`):
# an organisational unit or a root.
ORGANIZATION_PARENT = re.compile(r"^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$")


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    table_name: str = "resolver-mesh-hubs"
    mesh_id: str = "resolver-mesh"
    home_region: str | None = None
    mesh_regions: tuple[str, ...] = ()
    excluded_regions: tuple[str, ...] = ()
    calls_per_second: float = 5.0
    max_attempts: int = 6
    call_timeout_seconds: float = 20.0
    adopt_unmanaged: bool = False
    readiness_wait_seconds: float = 120.0
    readiness_poll_seconds: float = 10.0
    delivery: Delivery = "rules"
    guard: Guard = field(default_factory=Guard)
    # Other accounts swept whether or not an item names them (so that what an entry left there
    # is cleaned up once the entry is gone).
    member_roles: tuple[AccountAccess, ...] = ()
    # Organisational units (or roots) whose ACTIVE accounts are members, reached through the
    # role member.yaml creates (`member_role_name`) with `member_external_id`.
    member_ous: tuple[str, ...] = ()
    member_external_id: str | None = None

    def __post_init__(self) -> None:
        if not MESH_ID_PATTERN.match(self.mesh_id):
            raise ConfigError(f"MESH_ID {self.mesh_id!r}: use 1-48 letters, digits, '-' or '_'")
        if self.member_ous and len(self.member_role_name) > MAX_ROLE_NAME:
            raise ConfigError(
                f"MESH_ID {self.mesh_id!r}: with MEMBER_OUS, members are reached through the role"
                f" {self.member_role_name!r}, longer than the {MAX_ROLE_NAME} characters IAM"
                f" allows: use at most {MAX_ROLE_NAME - len(MEMBER_ROLE_PREFIX)} characters"
            )
        if not self.table_name:
            raise ConfigError("HUBS_TABLE_NAME must not be empty")
        if not (math.isfinite(self.calls_per_second) and self.calls_per_second > 0):
            raise ConfigError("CALLS_PER_SECOND must be a finite number greater than 0")
        if not (math.isfinite(self.call_timeout_seconds) and self.call_timeout_seconds > 0):
            raise ConfigError("CALL_TIMEOUT_SECONDS must be a finite number greater than 0")
        if not 0 <= self.readiness_wait_seconds < math.inf:
            raise ConfigError("READINESS_WAIT_SECONDS must be a finite number of seconds")
        if not 0 < self.readiness_poll_seconds < math.inf:
            raise ConfigError("READINESS_POLL_SECONDS must be a finite number above 0")
        if self.delivery not in DELIVERIES:
            raise ConfigError(
                f"DELIVERY (--delivery) {self.delivery!r}: must be one of {', '.join(DELIVERIES)}"
            )
        if self.max_attempts < 1:
            raise ConfigError("MAX_ATTEMPTS must be at least 1")
        if not 0 <= self.guard.max_fraction <= 1:  # NaN fails this test too
            raise ConfigError("MAX_CHANGE_FRACTION must be between 0 and 1")
        for setting, regions in self.region_settings().items():
            malformed = [r for r in regions if not REGION_PATTERN.match(r)]
            if malformed:
                raise ConfigError(
                    f"{setting}: {', '.join(map(repr, malformed))} is not a Region name"
                    " like 'us-east-2'"
                )
        malformed_ous = [p for p in self.member_ous if not ORGANIZATION_PARENT.match(p)]
        if malformed_ous:
            raise ConfigError(
                f"MEMBER_OUS (--member-ous): {', '.join(map(repr, malformed_ous))} is not an"
                " organisational unit id like 'ou-ab12-cdef3456' or a root id like 'r-ab12'"
            )
        if self.member_external_id is not None:
            try:
                TypeAdapter(ExternalId).validate_python(self.member_external_id)
            except ValidationError as error:
                problem = error.errors()[0]["msg"].removeprefix("Value error, ")
                raise ConfigError(f"MEMBER_EXTERNAL_ID: {problem}") from None
        both = sorted(set(self.mesh_regions) & set(self.excluded_regions))
        if both:
            raise ConfigError(
                f"EXCLUDED_REGIONS (--excluded-regions): {', '.join(both)} also"
                " in MESH_REGIONS: a Region is swept or excluded, not both"
            )

    def region_settings(self) -> dict[str, tuple[str, ...]]:
        """The Region lists of the settings, by the names people set them with."""
        return {
            "MESH_REGIONS (--mesh-regions)": self.mesh_regions,
            "EXCLUDED_REGIONS (--excluded-regions)": self.excluded_regions,
        }

    @property
    def member_role_name(self) -> str:
        """The name of the member role member.yaml creates in every member account."""
        return f"{MEMBER_ROLE_PREFIX}{self.mesh_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from `env` (default `os.environ`); `overrides` that are not None win."""
        env = os.environ if env is None else env

        def number(name: str, default: float, kind: type[float] | type[int]) -> float:
            raw = env.get(name, "").strip()
            try:
                return kind(raw) if raw else default
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number") from None

        def flag(name: str) -> bool:
            raw = env.get(name, "").strip().lower()
            if raw in ("", "false", "0", "no"):
                return False
            if raw in ("true", "1", "yes"):
                return True
            raise ConfigError(f"{name}={raw!r} must be true or false")

        values: dict[str, object] = {
            "adopt_unmanaged": flag("ADOPT_UNMANAGED"),
            "readiness_wait_seconds": number(
                "READINESS_WAIT_SECONDS", cls.readiness_wait_seconds, float
            ),
            "readiness_poll_seconds": number(
                "READINESS_POLL_SECONDS", cls.readiness_poll_seconds, float
            ),
            "table_name": env.get("HUBS_TABLE_NAME", "").strip() or cls.table_name,
            "delivery": env.get("DELIVERY", "").strip().lower() or cls.delivery,
            "mesh_id": env.get("MESH_ID", "").strip() or cls.mesh_id,
            "home_region": env.get("HOME_REGION", "").strip() or None,
            "mesh_regions": region_list(env.get("MESH_REGIONS", "")),
            "excluded_regions": region_list(env.get("EXCLUDED_REGIONS", "")),
            "calls_per_second": number("CALLS_PER_SECOND", cls.calls_per_second, float),
            "max_attempts": int(number("MAX_ATTEMPTS", cls.max_attempts, int)),
            "call_timeout_seconds": number("CALL_TIMEOUT_SECONDS", cls.call_timeout_seconds, float),
            "member_roles": _member_roles(env.get("MEMBER_ROLES", "")),
            "member_ous": comma_list(env.get("MEMBER_OUS", "")),
            "member_external_id": env.get("MEMBER_EXTERNAL_ID", "").strip() or None,
            "guard": Guard(
                max_fraction=number("MAX_CHANGE_FRACTION", Guard.max_fraction, float),
                min_rules=int(number("MIN_RULES_FOR_GUARD", Guard.min_rules, int)),
            ),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def comma_list(raw: str) -> tuple[str, ...]:
    """The non-empty entries of a comma-separated list, stripped, in their order."""
    return tuple(entry.strip() for entry in raw.split(",") if entry.strip())


def region_list(raw: str) -> tuple[str, ...]:
    """A comma-separated list of Regions (`MESH_REGIONS`, `--mesh-regions`, ...)."""
    return comma_list(raw)


def _member_roles(raw: str) -> tuple[AccountAccess, ...]:
    """`MEMBER_ROLES`: comma-separated role ARNs of member accounts, each optionally followed
    by `|<external id>`."""
    found = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        role_arn, _, external_id = entry.partition("|")
        account_id = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        fields = {"account_id": account_id, "role_arn": role_arn, "external_id": external_id}
        try:
            found.append(AccountAccess.model_validate({k: v for k, v in fields.items() if v}))
        except ValidationError as error:
            problem = error.errors()[0]["msg"].removeprefix("Value error, ")
            raise ConfigError(f"MEMBER_ROLES entry {entry!r}: {problem}") from None
    return tuple(found)
