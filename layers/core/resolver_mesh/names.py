"""Domain names, Region names, rule names and the ownership marker.

Invariants:
- `REGION_PATTERN` is the one shape of an AWS Region name (`us-east-1`, `us-gov-west-1`,
  `us-isob-east-1`, `eusc-de-east-1`); models, the settings and the deploy script use it.
  A name of that shape may still not be a Region: `Aws.known_regions` says which are.
- `normalise_domain` is idempotent and gives lower case with exactly one trailing dot, the form
  Route 53 Resolver returns; every comparison of domains goes through it.
- A rule is ours if and only if its CreatorRequestId starts with `ownership_prefix(mesh_id)`.
  The marker is read from `ListResolverRules`, so ownership costs no per-rule call.
- Rule names are at most 64 characters of `[A-Za-z0-9_-]`, never contain a dot and are
  deterministic for a (mesh id, domain) pair.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable

MARKER = "resolver-mesh"
OWNER_TAG_KEY = "resolver-mesh:owner"
TARGET_TAG_KEY = "resolver-mesh:target"
# A VPC tagged `resolver-mesh:mesh=<mesh id>` joins the hub of its Region (README, "VPCs that
# join by tag"): one key, so that a VPC joins one mesh at most.
MESH_TAG_KEY = "resolver-mesh:mesh"
MESH_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
# A Region name: a 2-4 letter area, one or more words, a number (what every partition's
# regionRegex in botocore's partitions.json allows today, without naming the areas).
REGION_NAME = r"[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}"
REGION_PATTERN = re.compile(rf"^{REGION_NAME}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_MAX_RULE_NAME = 64


def normalise_domain(domain: str) -> str:
    """`Us-East-2.AmazonAWS.com` and `us-east-2.amazonaws.com.` both become the second."""
    return domain.strip().lower().rstrip(".") + "."


def domain_problem(domain: str) -> str | None:
    """Why a normalised domain cannot be forwarded, or None when it can."""
    bare = domain.rstrip(".")
    if not bare:
        return "the root domain cannot be forwarded"
    if len(bare) > 253:
        return "longer than 253 characters"
    for label in bare.split("."):
        if not _LABEL.match(label):
            return f"label {label!r} is not 1-63 characters of a-z, 0-9, '-' or '_'"
    return None


def private_dns_names(names: Iterable[str]) -> tuple[str, ...]:
    """The forwardable domains of an endpoint service's private DNS names, normalised, in order,
    once each. A leading `*.` is dropped: a rule for `s3.us-east-1.amazonaws.com` covers
    `*.s3.us-east-1.amazonaws.com` too. Names that cannot be forwarded are left out."""
    found: list[str] = []
    for name in names:
        domain = normalise_domain(name.strip().removeprefix("*."))
        if domain not in found and not domain_problem(domain):
            found.append(domain)
    return tuple(found)


def rule_name(mesh_id: str, domain: str) -> str:
    """A readable, dot-free name such as `resolver-mesh-us-east-2-vpce-amazonaws-com`."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", domain.rstrip("."))
    name = f"{mesh_id}-{slug}"
    if len(name) <= _MAX_RULE_NAME:
        return name
    digest = hashlib.sha256(domain.encode()).hexdigest()[:8]
    return f"{name[: _MAX_RULE_NAME - 9]}-{digest}"


def share_name(mesh_id: str) -> str:
    """The name of the AWS RAM share of a mesh's rules (one per account and Region)."""
    return f"{MARKER}-{mesh_id}"


def profile_name(mesh_id: str) -> str:
    """The name of our Route 53 Profile in every location (the owner tag decides, not it)."""
    return f"{MARKER}-{mesh_id}"


def ownership_prefix(mesh_id: str) -> str:
    """The CreatorRequestId prefix that marks a rule as owned by this mesh."""
    return f"{MARKER}/{mesh_id}/"


STABLE_MARKERS = 8
SPOKE_SOURCE_PREFIX = "vpc-"


def creator_request_ids(
    mesh_id: str, region: str, domain: str, target_region: str, source: str = ""
) -> tuple[str, ...]:
    """The markers to create a rule with, in order of preference.

    They are deterministic for (mesh, Region, domain, target Region): two reconcilers that
    create the same rule at the same time, or a create retried after a lost response, meet
    AWS's `ResourceExistsException` and find the one rule instead of making two. There are
    several generations (`.../<digest>`, `.../<digest>-2`, ...) for when AWS still remembers a
    marker of a rule deleted since: concurrent reconcilers walk the same sequence and meet on
    the same generation. Only past the last one is a random suffix used. Every marker records
    the target Region, so that the rules of an unreadable hub are recognised and kept, and a
    spoke's rules also its VPC (`source`): `.../<target>/<vpc-id>/<digest>`.
    """
    key = f"{region}|{normalise_domain(domain)}" + (f"|{source}" if source else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    stable = f"{ownership_prefix(mesh_id)}{target_region}/{source + '/' if source else ''}{digest}"
    generations = [stable] + [f"{stable}-{n}" for n in range(2, STABLE_MARKERS + 1)]
    return (*generations, f"{stable}-{uuid.uuid4().hex[:12]}")


def owned_target_region(creator_request_id: str | None, mesh_id: str) -> str | None:
    """The target Region recorded in our marker, or None when the rule is not ours."""
    prefix = ownership_prefix(mesh_id)
    if not creator_request_id or not creator_request_id.startswith(prefix):
        return None
    target_region, _, _ = creator_request_id[len(prefix) :].partition("/")
    return target_region or None


def owned_source(creator_request_id: str | None, mesh_id: str) -> str:
    """The spoke VPC recorded in our marker; "" for the hub's rules (and rules not ours)."""
    prefix = ownership_prefix(mesh_id)
    if not creator_request_id or not creator_request_id.startswith(prefix):
        return ""
    parts = creator_request_id[len(prefix) :].split("/")
    return parts[1] if len(parts) > 2 and parts[1].startswith(SPOKE_SOURCE_PREFIX) else ""
