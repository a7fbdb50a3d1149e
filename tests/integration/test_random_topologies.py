"""Seeded random topologies: a random walk of changes to hub items, VPCs, tags and rules that are
not ours, each followed by reconciles (the Lambda handler, over HTTP to the emulator) until one
writes nothing, then checked against an expectation derived here from the items, the tags and
the rules the walk made, independently of the product's planner.

A world: 2 to 4 Regions of `MESH_REGIONS` (the Regions swept), a hub built in each (most with
an outbound endpoint), items for at least two of them, and perhaps a member account (listed in
MEMBER_ROLES). Steps: add, remove, disable or enable a hub item; change its domains (default,
custom, `{services}`), its peers, its inbound endpoint's IPs; add or remove a workload VPC
(`vpc_ids`), a member VPC (`shared_vpcs`), a direct or central spoke (home or member account,
with or without `parent_domain`), or disable one; tag or untag a VPC of either account with the
join tag; delete a VPC; add a rule not ours (loose, a look-alike with our owner tag, or on a
VPC, sometimes for a domain a hub forwards, before that VPC joins) or take one off its VPC;
write a malformed item and fix it.

After every step:

1. what AWS holds (listed with plain boto3 in every account and Region of the walk: the mesh's
   rules, where they forward, which VPCs of which account use them, and the hub's RAM shares)
   equals the expectation;
2. the reconcile that ended the step was a no-op, and it came at the latest straight after the
   first one that wrote (README, *What a reconcile does*: "A reconcile straight after a
   reconcile makes no write");
3. every rule that is not ours (made by the walk, associated or not) and its associations are
   exactly as the walk left them;
4. the report is `ok` and names the conflicts, joined and not-joined VPCs the expectation
   predicts; a step that writes bad input (a malformed item, a listed VPC deleted) is
   reconciled once, must be reported as an error naming the item and the field, must change
   nothing anywhere, and is then fixed (see `Walk.bad_input` for disabled items).

The mass-change guard may refuse a step that takes things away: that refusal must write nothing,
and the walk then forces the reconcile. Every failure message carries the seed and the steps
so far. `RANDOM_WALKS=<seed>:<steps>` (or `<first>-<last>:<steps>`, with `:org` after either
for organisation walks) in the environment runs those walks instead of the default ones, to
replay one or to look for new defects. A walk's choices depend on its seed alone, never on the
ids the emulator makes (lists are in the order the walk made things), so a seed replays.

Organisation walks (`WalkPlan.organization`): the member account is created in the emulator's
organisation, in the OU that `MEMBER_OUS` names, and steps move it out of the OU and back
(README, *Organisations*): out of it and named by no item, its tagged VPCs neither join nor
are reported, and the hub's rules leave its VPCs and its share; named by an item
(`shared_vpcs`), it is still read. Its spokes are taken out of the items before it leaves, as
the README asks (their rules would be found only while the account is swept). The hubs
table's changes reach the function as deployed (its stream records, through the queue path
of the handler, with a work table): so a hub item removed with member spokes, where nothing of
ours at home leads back, has its spokes swept through the lead its item leaves (README, *Where
an item stops naming an account*).
"""

from __future__ import annotations

import os
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

import pytest
from meshkit import (
    DEFAULT_MESH_ID,
    HOME_REGION,
    MESH_REGIONS,
    HubsStream,
    Mesh,
    create_work_table,
    normalise,
    targets_of,
)

from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    assumed_clients,
    build_spoke,
    create_unmanaged_rule,
    hub_item,
    spoke_item,
)
from resolver_mesh.names import MESH_TAG_KEY, OWNER_TAG_KEY

MEMBER = "222222222222"  # the member account of MEMBER_ROLES (organisations make their own)
EXTERNAL_ID = "random-topologies"
MARKER = f"resolver-mesh/{DEFAULT_MESH_ID}/"
GONE = "DELETING"
MISSING_VPC = "vpc-0123456789abcdef0"
MISSING_OUT = "rslvr-out-0123456789abcdef0"
PROFILE_NAME = f"resolver-mesh-{DEFAULT_MESH_ID}"  # our Route 53 Profile in each location
RULE = ":resolver-rule/"  # in the ARN of a rule (a share of ours may hold our Profile too)
LIVE_FIELDS = frozenset({"vpc_id", "vpc_ids", "inbound_endpoint_id", "shared_vpcs", "spokes"})
MAX_PASSES = 4  # reconciles per step before the walk gives up on convergence
# Resolver endpoints per account and Region, AWS's default quota (Route 53 Developer Guide,
# "Quotas on Route 53 Resolver").
ENDPOINTS_PER_REGION = 4
S3_NAMES = ("s3", "s3-control", "s3-accesspoint")  # `{services}` of a hub with an S3 endpoint
DEFAULT_DOMAINS = ("{region}.amazonaws.com", "{region}.vpce.amazonaws.com")
DOMAIN_CHOICES: tuple[tuple[str, ...] | None, ...] = (
    None,
    ("{region}.amazonaws.com",),
    ("{region}.vpce.amazonaws.com", "{region}.example.internal"),
    ("{services}", "{region}.vpce.amazonaws.com"),
    ("{region}.example.internal",),
)


@dataclass(frozen=True)
class WalkPlan:
    seed: int
    steps: int
    caught: str = ""  # the product defect this walk found, fixed since
    # The member account comes from an OU of the emulator's organisation (`MEMBER_OUS`), and
    # the walk may move it out of the OU and back (README, *Organisations*).
    organization: bool = False
    # The mesh delivers through Route 53 Profiles (`DELIVERY=profile`), and steps change the
    # items' `delivery` (README, *Delivery through Route 53 Profiles*).
    profiles: bool = False


def walks() -> list[WalkPlan]:
    """The walks to run; `RANDOM_WALKS=first-last:steps` (or `seed:steps`, and `:org`,
    `:profile` or `:org,profile` after either) in the environment runs other seeds instead,
    e.g. to look for new defects or replay one."""
    wanted = os.environ.get("RANDOM_WALKS")
    if not wanted:
        return [
            WalkPlan(54, 12),
            WalkPlan(46, 12),
            WalkPlan(45, 12),
            WalkPlan(58, 12),
            # Organisation walks (the member account leaves its OU and comes back):
            WalkPlan(10, 16, organization=True),
            WalkPlan(5, 12, organization=True),
            # Profile walks, each of which found a defect (profiles.py): a hub without rules
            # kept its VPCs on an empty Profile, left for good once its item went;
            WalkPlan(4, 4, "empty profile", profiles=True),
            # a disabled hub's Profile stayed on the VPCs of another account, and its
            # deletion failed on them;
            WalkPlan(6, 12, "profile held elsewhere", profiles=True),
            # back to rules, a VPC where a rule not ours held a domain kept our Profile;
            WalkPlan(51, 16, "back to rules", profiles=True),
            WalkPlan(3, 16, organization=True, profiles=True),
            # a removed hub's Profile stayed on the VPCs of a member account leaving the OU
            # (the trail of its Region did not read their Profiles), and for good (reconcile.py,
            # and `ProfilePlan.lingering`);
            WalkPlan(63, 20, "removed hub's profile", organization=True, profiles=True),
            # Walks that found product defects, kept (their paths were drawn while the walk
            # still chose by the emulator's ids; each defect also has a test of its own):
            # an empty share of ours (its hub forwarded nothing) was never read again, so it
            # kept naming an account whose VPC had left (plan.py, `_plan_share`);
            WalkPlan(49, 5, "empty share"),
            # a hub item in doubt let a tagged VPC join although a rule not ours held one of
            # that hub's domains in it (desired.py, `_forwarded_domains`);
            WalkPlan(14, 7, "hub in doubt"),
            # a member's spoke rules stayed in a Region whose item was removed when no rule of
            # ours forwarded there (reconcile.py, the Regions that hold rules of ours).
            WalkPlan(138, 12, "member spoke rules"),
        ]
    seeds, _, rest = wanted.partition(":")
    steps, _, kinds = rest.partition(":")
    first, _, last = seeds.partition("-")
    flags = set(kinds.split(","))
    return [
        WalkPlan(seed, int(steps or 9), organization="org" in flags, profiles="profile" in flags)
        for seed in range(int(first), int(last or first) + 1)
    ]


WALKS = walks()


def hub_domains(item: dict[str, Any]) -> set[str]:
    """The normalised domains a hub item answers for (README, *The hub item*)."""
    region = item["region"]
    found: set[str] = set()
    for template in item.get("domains") or DEFAULT_DOMAINS:
        if template == "{services}":  # every hub is built with one S3 interface endpoint
            found |= {f"{name}.{region}.amazonaws.com." for name in S3_NAMES}
        else:
            found.add(normalise(template.replace("{region}", region)))
    return found


# --- the walk's own record of the world --------------------------------------------------------


@dataclass
class Vpc:
    vpc_id: str
    account: str
    region: str
    deletable: bool  # made by the walk for it (not hub VPCs, nor spokes)
    tagged: bool = False
    foreign: dict[str, str] = field(default_factory=dict)  # domain -> a rule not ours on it


@dataclass
class Foreign:
    """A rule that is not ours, as the walk made it, and how it must stay."""

    account: str
    region: str
    rule_id: str
    what: str
    fingerprint: Any = None


@dataclass(frozen=True)
class Observed:
    """Everything of the mesh and around it, listed with plain boto3 in every account."""

    # (owner account, Region, domain, outbound endpoint) -> (targets, {(account, VPC)})
    managed: dict[tuple[str, str, str, str], tuple[frozenset[tuple[str, int]], frozenset[Any]]]
    arns: dict[tuple[str, str], set[str]]  # (Region, endpoint) -> ARNs of our home rules
    using: set[tuple[str, str]]  # (account, VPC) using at least one rule of ours
    held: dict[tuple[str, str], set[str]]  # (account, VPC) -> domains any rule holds on it
    others: set[tuple[str, str, str, str]]  # (account, Region, rule, VPC) of rules not ours
    shares: dict[str, list[tuple[frozenset[str], frozenset[str]]]]  # ours: (principals, rules)
    on_profile: set[tuple[str, str]]  # (account, VPC) that holds a Profile of ours
    direct: set[tuple[str, str]]  # (account, VPC) with a hub rule of ours associated directly
    profile_arns: dict[str, str]  # Region -> the ARN of our Profile there
    problems: list[str]
    raw: Any  # for "nothing changed": every rule, association and share, as listed


@dataclass(frozen=True)
class Expected:
    managed: dict[tuple[str, str, str, str], tuple[frozenset[tuple[str, int]], frozenset[Any]]]
    conflicts: set[tuple[str, str, str, str]]  # (Region, account, domain, VPC)
    joined: set[tuple[str, str, str, str]]  # (Region, account, VPC, role)
    not_joined: set[str]
    unchecked_joins: set[str]  # tagged VPCs of a hub without rules: either answer is fine
    sharing: dict[str, bool]  # Region -> a share of ours with the member must exist (or not)
    # (account, VPC) -> how it gets its hub's rules ("rules" or "profile"), where the hub
    # forwards something; `may_hold`: every VPC that may hold our Profile
    deliveries: dict[tuple[str, str], str] = field(default_factory=dict)
    may_hold: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class Step:
    text: str
    shrinking: bool = False  # takes something away: the mass-change guard may refuse it


class Walk:
    def __init__(
        self,
        seed: int,
        make_mesh: Callable[..., Mesh],
        aws: ClientFactory,
        emulator: LocalEmulator,
        monkeypatch: pytest.MonkeyPatch,
        organization: bool = False,
        profiles: bool = False,
    ) -> None:
        self.seed = seed
        self.profiles = profiles
        self.delivery = "profile" if profiles else "rules"  # the mesh's DELIVERY
        if profiles:
            monkeypatch.setenv("DELIVERY", "profile")
        self.rng = random.Random(seed)
        self.log: list[str] = []
        self.cidrs: Iterator[int] = iter(range(128, 256))
        self.names: Iterator[int] = iter(range(1, 1000))
        rng = self.rng
        regions = rng.sample(MESH_REGIONS, rng.randint(2, 4))
        self.regions = tuple(r for r in MESH_REGIONS if r in regions)
        outbound = [r for r in self.regions if rng.random() < 0.85] or [self.regions[0]]
        self.mesh = make_mesh(regions=self.regions, outbound=outbound, register=False)
        self.mesh.mesh_regions = self.regions
        # The hubs table's changes reach the function as deployed: stream, pipe, queue; the
        # work table keeps where items stopped naming an account.
        self.stream = HubsStream(aws, self.mesh.table)
        monkeypatch.setenv("WORK_TABLE_NAME", create_work_table(aws))
        monkeypatch.setenv("READINESS_WAIT_SECONDS", "0")  # no waiting in-process
        self.home = str(aws("sts", HOME_REGION).get_caller_identity()["Account"])
        self.clients: dict[str, ClientFactory] = {self.home: aws}
        self.member: CachedClients | None = None
        self.member_id = MEMBER
        self.organization: Any = None  # the home account's Organizations client
        self.root = self.ou = ""
        self.in_ou = False
        if organization:
            self.member_id = self.make_organization(aws, monkeypatch)
        role = f"arn:aws:iam::{self.member_id}:role/resolver-mesh-member-{DEFAULT_MESH_ID}"
        self.reach = {"account_id": self.member_id, "role_arn": role, "external_id": EXTERNAL_ID}
        if organization or rng.random() < 0.6:
            if not organization:
                monkeypatch.setenv("MEMBER_ROLES", f"{role}|{EXTERNAL_ID}")
            self.member = assumed_clients(aws, role, EXTERNAL_ID, emulator.endpoint_url)
            self.clients[self.member_id] = self.member
        self.mesh.activate()
        self.vpcs: dict[str, Vpc] = {}
        for hub in self.mesh.hubs.values():
            self.vpcs[hub.vpc_id] = Vpc(hub.vpc_id, self.home, hub.region, deletable=False)
            for workload in hub.workload_vpc_ids:
                self.vpcs[workload] = Vpc(workload, self.home, hub.region, deletable=True)
        self.foreign: dict[str, Foreign] = {}
        self.spare_ips: set[str] = set()  # Regions whose inbound endpoint has the spare IP
        first = rng.sample(self.regions, rng.randint(2, len(self.regions)))
        for region in sorted(first):
            self.mesh.put(hub_item(self.mesh.hubs[region], **self.random_domains()))
        self.log.append(
            f"world: Regions {list(self.regions)}, outbound endpoints {outbound}, member account"
            f" {'in the OU of MEMBER_OUS' if organization else 'yes' if self.member else 'no'},"
            f" DELIVERY {self.delivery}, items {sorted(first)}"
            + "".join(
                f"; {r} domains {self.mesh.items[r].get('domains')}"
                for r in sorted(first)
                if self.mesh.items[r].get("domains")
            )
        )

    # --- reporting --------------------------------------------------------------------------

    def context(self) -> str:
        steps = "\n".join(f"  {n}. {line}" for n, line in enumerate(self.log))
        return f"seed {self.seed}, steps so far:\n{steps}"

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            pytest.fail(f"{message}\n{self.context()}", pytrace=False)

    # --- small helpers ----------------------------------------------------------------------

    def random_domains(self) -> dict[str, Any]:
        choice = self.rng.choice(DOMAIN_CHOICES) if self.rng.random() < 0.4 else None
        return {"domains": list(choice)} if choice else {}

    def fresh_item(self, region: str) -> dict[str, Any]:
        """The plain item of a Region's hub, without workload VPCs the walk deleted."""
        item = hub_item(self.mesh.hubs[region])
        vpc_ids = [v for v in item.pop("vpc_ids", []) if v in self.vpcs]
        return {**item, "vpc_ids": vpc_ids} if vpc_ids else item

    def new_vpc(self, account: str, region: str, tagged: bool = False) -> Vpc:
        ec2 = self.clients[account]("ec2", region)
        vpc_id = str(ec2.create_vpc(CidrBlock=f"10.{next(self.cidrs)}.0.0/16")["Vpc"]["VpcId"])
        vpc = Vpc(vpc_id, account, region, deletable=True)
        self.vpcs[vpc_id] = vpc
        if tagged:
            self.tag(vpc)
        return vpc

    def tag(self, vpc: Vpc) -> None:
        self.clients[vpc.account]("ec2", vpc.region).create_tags(
            Resources=[vpc.vpc_id], Tags=[{"Key": MESH_TAG_KEY, "Value": DEFAULT_MESH_ID}]
        )
        vpc.tagged = True

    def about(self, vpc: Vpc) -> str:
        """What matters about a VPC that joins: its tag, the rules not ours it holds."""
        tagged = " (tagged)" if vpc.tagged else ""
        holds = f" (holds rules not ours for {sorted(vpc.foreign)})" if vpc.foreign else ""
        return tagged + holds

    def who(self, account: str) -> str:
        return "home" if account == self.home else "member"

    def listed_by(self, vpc: Vpc) -> tuple[str, str] | None:
        """(Region, field) of the item that lists the VPC, if one does."""
        for region, item in self.mesh.items.items():
            if vpc.vpc_id == item.get("vpc_id"):
                return region, "vpc_id"
            if vpc.vpc_id in item.get("vpc_ids", []):
                return region, "vpc_ids"
            if vpc.vpc_id in [e["vpc_id"] for e in item.get("shared_vpcs", [])]:
                return region, "shared_vpcs"
            if vpc.vpc_id in [e["vpc_id"] for e in item.get("spokes", [])]:
                return region, "spokes"
        return None

    def region_of(self, vpc_id: str) -> str:
        known = self.vpcs.get(vpc_id)
        return known.region if known else ""

    def enabled(self, region: str) -> bool:
        return region in self.mesh.items and self.mesh.items[region].get("enabled", True) is True

    # --- the organisation -----------------------------------------------------------------------

    def make_organization(self, aws: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> str:
        """The home account's organisation with one OU, `MEMBER_OUS`, holding one account
        (reached through the member role `member.yaml` makes); returns the account's id."""
        self.organization = aws("organizations", HOME_REGION)
        self.organization.create_organization(FeatureSet="ALL")
        self.root = self.organization.list_roots()["Roots"][0]["Id"]
        made = self.organization.create_organizational_unit(ParentId=self.root, Name="workloads")
        self.ou = made["OrganizationalUnit"]["Id"]
        account = str(
            self.organization.create_account(Email="member@example.com", AccountName="member")[
                "CreateAccountStatus"
            ]["AccountId"]
        )
        self.move(account, into_ou=True)
        monkeypatch.setenv("MEMBER_OUS", self.ou)
        monkeypatch.setenv("MEMBER_EXTERNAL_ID", EXTERNAL_ID)
        return account

    def move(self, account: str, into_ou: bool) -> None:
        source, destination = (self.root, self.ou) if into_ou else (self.ou, self.root)
        self.organization.move_account(
            AccountId=account, SourceParentId=source, DestinationParentId=destination
        )
        self.in_ou = into_ou

    def named_by_items(self) -> bool:
        """Whether an item (the walk's are valid between steps) names the member account."""
        return any(
            entry.get("account_id") == self.member_id
            for item in self.mesh.items.values()
            for entry in (*item.get("shared_vpcs", []), *item.get("spokes", []))
        )

    def member_spokes(self) -> bool:
        return any(
            entry.get("account_id") == self.member_id
            for item in self.mesh.items.values()
            for entry in item.get("spokes", [])
        )

    def reached(self, account: str) -> bool:
        """Whether the reconciler reads the account: the home account; the member while it is
        in the OU of MEMBER_OUS (or listed in MEMBER_ROLES), or while an item names it."""
        if account == self.home:
            return True
        return self.member is not None and (
            not self.organization or self.in_ou or self.named_by_items()
        )

    # --- observing ----------------------------------------------------------------------------

    def observe(self) -> Observed:
        listed: dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for account, clients in self.clients.items():
            for region in self.regions:
                resolver = clients("route53resolver", region)
                rules = [
                    r
                    for page in resolver.get_paginator("list_resolver_rules").paginate()
                    for r in page["ResolverRules"]
                    if r.get("Status") != GONE
                ]
                associations = [
                    a
                    for page in resolver.get_paginator("list_resolver_rule_associations").paginate()
                    for a in page["ResolverRuleAssociations"]
                    if a.get("Status") != GONE
                ]
                listed[account, region] = (rules, associations)

        problems: list[str] = []
        ours: dict[str, tuple[str, str, dict[str, Any]]] = {}  # rule id -> (owner, Region, rule)
        theirs: dict[str, str] = {}  # rule id -> domain, rules not ours
        for (account, region), (rules, _) in listed.items():
            for rule in rules:
                owner = rule.get("OwnerId", account)
                if rule.get("ShareStatus") == "SHARED_WITH_ME" or owner != account:
                    continue
                if rule.get("CreatorRequestId", "").startswith(MARKER):
                    ours[rule["Id"]] = (account, region, rule)
                else:
                    theirs[rule["Id"]] = normalise(rule["DomainName"])

        vpcs_of: dict[str, set[tuple[str, str]]] = {rule_id: set() for rule_id in ours}
        using: set[tuple[str, str]] = set()
        held: dict[tuple[str, str], set[str]] = {}
        held_by_others: dict[tuple[str, str], set[str]] = defaultdict(set)
        hub_outbound = {h.outbound_endpoint_id for h in self.mesh.hubs.values()} - {None}
        direct: set[tuple[str, str]] = set()
        others: set[tuple[str, str, str, str]] = set()
        for (account, region), (rules, associations) in listed.items():
            visible = {r["Id"] for r in rules}
            for association in associations:
                rule_id, vpc = association["ResolverRuleId"], association["VPCId"]
                if rule_id not in visible:
                    problems.append(
                        f"{region} ({self.who(account)}): association of missing"
                        f" rule {rule_id} with {vpc}"
                    )
                if rule_id in ours:
                    vpcs_of[rule_id].add((account, vpc))
                    using.add((account, vpc))
                    domain = normalise(ours[rule_id][2]["DomainName"])
                    if ours[rule_id][2].get("ResolverEndpointId") in hub_outbound:
                        direct.add((account, vpc))
                else:
                    others.add((account, region, rule_id, vpc))
                    domain = theirs.get(rule_id, f"? {rule_id}")
                    held_by_others[account, vpc].add(domain)
                domains = held.setdefault((account, vpc), set())
                if domain in domains:
                    problems.append(f"{vpc} holds two rules for {domain}")
                domains.add(domain)

        # Our Profiles (the home account's, with our name and owner tag) and the VPCs on them in
        # every account: a VPC whose Profile of ours is COMPLETE uses each rule the Profile
        # holds COMPLETE, but where a rule not ours associated with it holds the domain (that
        # one takes precedence over a Profile's: README, *Delivery through Route 53 Profiles*).
        profile_arns: dict[str, str] = {}
        profile_rules: dict[str, set[str]] = {}  # Profile id -> rule ids it holds COMPLETE
        raw_profiles: list[tuple[str, ...]] = []
        for region in self.regions:
            profiles = self.clients[self.home]("route53profiles", region)
            for summary in profiles.list_profiles()["ProfileSummaries"]:
                tags = profiles.list_tags_for_resource(ResourceArn=summary["Arn"])["Tags"]
                if summary["Name"] != PROFILE_NAME or tags.get(OWNER_TAG_KEY) != DEFAULT_MESH_ID:
                    continue
                if region in profile_arns:
                    problems.append(f"two Profiles of ours in {region}")
                profile_arns[region] = summary["Arn"]
                resources = profiles.list_profile_resource_associations(ProfileId=summary["Id"])
                profile_rules[summary["Id"]] = set()
                for resource in resources["ProfileResourceAssociations"]:
                    raw_profiles.append((region, summary["Id"], *map(str, resource.values())))
                    if resource["Status"] == "COMPLETE":
                        rule_id = resource["ResourceArn"].rsplit("/", 1)[-1]
                        profile_rules[summary["Id"]].add(rule_id)
        on_profile: set[tuple[str, str]] = set()
        for account, clients in self.clients.items():
            for region in self.regions:
                profiles = clients("route53profiles", region)
                for held_profile in profiles.list_profile_associations()["ProfileAssociations"]:
                    profile_id, vpc = held_profile["ProfileId"], held_profile["ResourceId"]
                    raw_profiles.append((account, region, profile_id, vpc, held_profile["Status"]))
                    if profile_id not in profile_rules:
                        continue
                    on_profile.add((account, vpc))
                    if held_profile["Status"] != "COMPLETE":
                        continue
                    for rule_id in profile_rules[profile_id] & set(ours):
                        domain = normalise(ours[rule_id][2]["DomainName"])
                        if domain not in held_by_others[account, vpc]:
                            vpcs_of[rule_id].add((account, vpc))
                            using.add((account, vpc))

        managed: dict[
            tuple[str, str, str, str], tuple[frozenset[tuple[str, int]], frozenset[Any]]
        ] = {}
        arns: dict[tuple[str, str], set[str]] = {}
        for rule_id, (account, region, rule) in ours.items():
            endpoint = str(rule.get("ResolverEndpointId", ""))
            key = (account, region, normalise(rule["DomainName"]), endpoint)
            if key in managed:
                problems.append(f"two rules of ours for {key}")
            if rule.get("RuleType") != "FORWARD" or rule.get("Status") != "COMPLETE":
                problems.append(f"rule {rule_id} is {rule.get('RuleType')} {rule.get('Status')}")
            if "." in rule.get("Name", ""):
                problems.append(f"rule {rule_id} has a dotted name {rule.get('Name')}")
            managed[key] = (frozenset(targets_of(rule)), frozenset(vpcs_of[rule_id]))
            if account == self.home:
                arns.setdefault((region, endpoint), set()).add(rule["Arn"])

        shares: dict[str, list[tuple[frozenset[str], frozenset[str]]]] = {}
        raw_shares = []
        for region in self.regions:
            ram = self.clients[self.home]("ram", region)
            shares[region] = []
            for share in ram.get_resource_shares(resourceOwner="SELF")["resourceShares"]:
                tags = {t["key"]: t["value"] for t in share.get("tags", [])}
                if share["status"] != "ACTIVE" or tags.get(OWNER_TAG_KEY) != DEFAULT_MESH_ID:
                    continue
                entities = [
                    frozenset(
                        a["associatedEntity"]
                        for a in ram.get_resource_share_associations(
                            associationType=kind, resourceShareArns=[share["resourceShareArn"]]
                        )["resourceShareAssociations"]
                        if a["status"] == "ASSOCIATED"
                    )
                    for kind in ("PRINCIPAL", "RESOURCE")
                ]
                shares[region].append((entities[0], entities[1]))
                raw_shares.append((region, share["resourceShareArn"], *map(sorted, entities)))

        raw = (
            sorted(
                (
                    account,
                    region,
                    sorted(
                        (
                            r["Id"],
                            r.get("Name"),
                            r["DomainName"],
                            r.get("ResolverEndpointId"),
                            sorted(targets_of(r)),
                            r.get("Status"),
                            r.get("ModificationTime"),
                        )
                        for r in rules
                    ),
                    sorted((a["ResolverRuleId"], a["VPCId"], a.get("Status")) for a in assocs),
                )
                for (account, region), (rules, assocs) in listed.items()
            ),
            sorted(raw_shares),
            sorted(raw_profiles),
        )
        return Observed(
            managed,
            arns,
            using,
            held,
            others,
            shares,
            on_profile,
            direct,
            profile_arns,
            problems,
            raw,
        )

    def fingerprint(self, foreign: Foreign) -> Any:
        resolver = self.clients[foreign.account]("route53resolver", foreign.region)
        rule = resolver.get_resolver_rule(ResolverRuleId=foreign.rule_id)["ResolverRule"]
        tags = resolver.list_tags_for_resource(ResourceArn=rule["Arn"])["Tags"]
        vpcs = sorted(
            a["VPCId"]
            for page in resolver.get_paginator("list_resolver_rule_associations").paginate()
            for a in page["ResolverRuleAssociations"]
            if a["ResolverRuleId"] == foreign.rule_id and a.get("Status") != GONE
        )
        return rule, sorted((t["Key"], t["Value"]) for t in tags), vpcs

    # --- the expectation ----------------------------------------------------------------------

    def forwards(self) -> dict[str, dict[str, str]]:
        """Source Region -> domain -> target Region, for every enabled hub that forwards
        (README, *What a reconcile does*)."""
        items = self.mesh.items
        enabled = {r: i for r, i in items.items() if i.get("enabled", True) is True}
        forwards: dict[str, dict[str, str]] = {}
        for source, item in enabled.items():
            if not item.get("outbound_endpoint_id"):
                continue
            peers = item.get("peers")
            forwards[source] = {
                domain: target
                for target in sorted(enabled if peers is None else peers)
                if target != source and target in enabled
                for domain in hub_domains(enabled[target])
            }
        return forwards

    def expect(self, using_before: set[tuple[str, str]]) -> Expected:
        """What the contract asks for, from the items, the tags and the walk's rules not ours."""
        items = self.mesh.items
        enabled = {r: i for r, i in items.items() if i.get("enabled", True) is True}
        forwards = self.forwards()

        receivers: dict[str, set[tuple[str, str]]] = {r: set() for r in self.regions}
        modes: dict[tuple[str, str], str] = {}  # README, *Delivery through Route 53 Profiles*
        for region, item in enabled.items():
            mode = item.get("delivery") or self.delivery
            for vpc_id in {item["vpc_id"], *item.get("vpc_ids", [])}:
                receivers[region].add((self.home, vpc_id))
                modes[self.home, vpc_id] = mode
            for entry in item.get("shared_vpcs", []):
                receivers[region].add((self.member_id, entry["vpc_id"]))
                modes[self.member_id, entry["vpc_id"]] = entry.get("delivery") or mode
        listed = {v for found in receivers.values() for v in found}

        joined: set[tuple[str, str, str, str]] = set()
        not_joined: set[str] = set()
        unchecked: set[str] = set()
        spokes = {e["vpc_id"] for i in items.values() for e in i.get("spokes", [])}
        for vpc in self.vpcs.values():
            if not vpc.tagged or (vpc.account, vpc.vpc_id) in listed:
                continue
            if not self.reached(vpc.account):  # its tags are not read: neither joins nor not
                continue
            if vpc.region not in enabled or vpc.vpc_id in spokes:
                not_joined.add(vpc.vpc_id)
                continue
            wanted = set(forwards.get(vpc.region, {}))
            clash = set(vpc.foreign) & wanted
            # README, *A tagged VPC that cannot join*: a rule not ours on one of the hub's
            # domains keeps it out, unless it already uses our rules (then it stays, with a
            # conflict for that domain, while any other domain is left to it).
            stays = (vpc.account, vpc.vpc_id) in using_before and bool(wanted - clash)
            if clash and not stays:
                not_joined.add(vpc.vpc_id)
                continue
            if not wanted:
                unchecked.add(vpc.vpc_id)
            role = "workload" if vpc.account == self.home else "shared"
            joined.add((vpc.region, vpc.account, vpc.vpc_id, role))
            receivers[vpc.region].add((vpc.account, vpc.vpc_id))
            modes[vpc.account, vpc.vpc_id] = enabled[vpc.region].get("delivery") or self.delivery

        managed: dict[
            tuple[str, str, str, str], tuple[frozenset[tuple[str, int]], frozenset[Any]]
        ] = {}
        conflicts: set[tuple[str, str, str, str]] = set()
        for source, domains in forwards.items():
            outbound = enabled[source]["outbound_endpoint_id"]
            for domain, target in domains.items():
                served: set[tuple[str, str]] = set()
                for account, vpc_id in receivers[source]:
                    known = self.vpcs.get(vpc_id)
                    if known is not None and domain in known.foreign:
                        conflicts.add((source, account, domain, vpc_id))
                    else:
                        served.add((account, vpc_id))
                managed[self.home, source, domain, outbound] = (
                    self.mesh.inbound_ips(target),
                    frozenset(served),
                )

        # Spokes (README, *Spokes*): a direct spoke copies the hub's cross-Region rules through
        # its own outbound endpoint; a central one sends the same domains, or its
        # parent_domain alone, to its own hub's inbound IPs; each only on the spoke VPC.
        for region, item in enabled.items():
            for spoke in item.get("spokes", []):
                if spoke.get("enabled", True) is False:
                    continue
                account = spoke.get("account_id", self.home)
                vpcs = frozenset({(account, spoke["vpc_id"])})
                domains = forwards.get(region, {})
                for domain, target in domains.items():
                    if spoke["mode"] == "direct":
                        targets = self.mesh.inbound_ips(target)
                    elif spoke.get("parent_domain"):
                        continue
                    else:
                        targets = self.mesh.inbound_ips(region)
                    key = (account, region, domain, spoke["outbound_endpoint_id"])
                    managed[key] = (targets, vpcs)
                if spoke["mode"] == "central" and spoke.get("parent_domain"):
                    key = (
                        account,
                        region,
                        normalise(spoke["parent_domain"]),
                        spoke["outbound_endpoint_id"],
                    )
                    managed[key] = (self.mesh.inbound_ips(region), vpcs)

        sharing: dict[str, bool] = {}
        for region in self.regions:
            members = any(account == self.member_id for account, _ in receivers[region])
            if not members:
                sharing[region] = False  # "deleted when no VPC needs it"
            elif forwards.get(region):
                sharing[region] = True
        deliveries = {
            vpc: modes[vpc]
            for region, found in receivers.items()
            if forwards.get(region)
            for vpc in found
        }
        may_hold = {vpc for vpc, mode in modes.items() if mode == "profile"}
        return Expected(
            managed, conflicts, joined, not_joined, unchecked, sharing, deliveries, may_hold
        )

    # --- reconciling and checking -------------------------------------------------------------

    def reconcile(self, step: Step) -> dict[str, Any]:
        """Reconcile until a pass writes nothing; check each pass; return the last report."""
        for written in range(MAX_PASSES):  # passes so far, each of which wrote
            before = self.observe()
            report: dict[str, Any] = self.next_pass()
            if report["refused"]:
                self.check(step.shrinking, f"refused a step that takes nothing away: {report}")
                self.check(report["calls"]["writes"] == 0, f"a refused pass wrote: {report}")
                self.check(self.observe().raw == before.raw, "a refused pass changed AWS")
                self.log[-1] += " [refused by the guard, then forced]"
                report = self.mesh.resync(force=True)
            self.check(report["errors"] == [], f"errors: {report['errors']}")
            quiet = (
                report["changes"] == []
                and not any(report["counts"].values())
                and report["calls"]["writes"] == 0
            )
            if quiet:
                self.check(
                    written <= 1,
                    f"{written} reconciles wrote before one wrote nothing (a reconcile straight"
                    " after a reconcile must make no write)",
                )
                return report
        pytest.fail(f"no quiet reconcile after {MAX_PASSES}\n{self.context()}", pytrace=False)

    def next_pass(self) -> dict[str, Any]:
        """The report of the next reconcile: the one the hubs table's new stream records queue,
        if any (the handler's queue path), else a resync."""
        batch = self.stream.batch()
        if not batch["Records"]:
            report: dict[str, Any] = self.mesh.resync()
            return report
        result = self.mesh.invoke(batch)
        self.check(result["batchItemFailures"] == [], f"records not taken: {result}")
        queued: dict[str, Any] = result["report"]
        return queued

    def settle(self, step: Step) -> None:
        self.log.append(step.text)
        using_before = self.observe().using
        report = self.reconcile(step)
        seen = self.observe()
        want = self.expect(using_before)
        self.check(not seen.problems, f"problems in AWS: {seen.problems}")
        if seen.managed != want.managed:
            extra = {k: v for k, v in seen.managed.items() if want.managed.get(k) != v}
            missing = {k: v for k, v in want.managed.items() if seen.managed.get(k) != v}
            self.check(
                False,
                f"our rules differ from the contract:\n  AWS holds {extra}\n  expected  {missing}",
            )
        for region, needed in want.sharing.items():
            found = [s for s in seen.shares[region] if s[0]]
            if needed:
                outbound = self.mesh.items[region]["outbound_endpoint_id"]
                hub_rules = frozenset(seen.arns.get((region, outbound), set()))
                rules_shared = [(p, frozenset(r for r in held if RULE in r)) for p, held in found]
                self.check(
                    rules_shared == [(frozenset({self.member_id}), hub_rules)],
                    f"{region}: our share should name {self.member_id} and hold the hub's rules"
                    f" {sorted(hub_rules)}; found {seen.shares[region]}",
                )
                profiled = any(  # a member VPC of the Region gets our Profile
                    mode == "profile"
                    and account == self.member_id
                    and self.region_of(vpc) == region
                    for (account, vpc), mode in want.deliveries.items()
                )
                if profiled:
                    self.check(
                        seen.profile_arns.get(region) in found[0][1],
                        f"{region}: our share should hold our Profile; found {found}",
                    )
            else:
                self.check(found == [], f"{region}: no share of ours needed, found {found}")
        self.check_deliveries(seen, want)
        self.check_others(seen)

        conflicts = {
            (c["region"], c.get("account", self.home), normalise(c["domain"]), c["vpc_id"])
            for c in report["conflicts"]
        }
        self.check(conflicts == want.conflicts, f"conflicts {conflicts} != {want.conflicts}")
        self.check(report["ok"] == (not want.conflicts), f"ok is {report['ok']}: {report}")
        self.check(not report["degraded"] and not report["pending"], f"report: {report}")
        listed_tagged = {v.vpc_id for v in self.vpcs.values() if v.tagged and self.listed_by(v)}
        joined = {
            (j["region"], j.get("account", self.home), j["vpc_id"], j["role"])
            for j in report["joined"]
            if j["vpc_id"] not in want.unchecked_joins | listed_tagged
        }
        wanted = {j for j in want.joined if j[2] not in want.unchecked_joins}
        self.check(joined == wanted, f"joined {joined} != expected {wanted}")
        known = {v for v in self.vpcs if self.vpcs[v].tagged}
        not_joined = {
            vpc for vpc in known if any(vpc in line for line in report["not_joined"])
        } - want.unchecked_joins
        self.check(
            not_joined == want.not_joined - want.unchecked_joins,
            f"not joined {not_joined} != expected {want.not_joined}: {report['not_joined']}",
        )

    def check_deliveries(self, seen: Observed, want: Expected) -> None:
        """Each VPC its hub forwards to gets the rules the way its delivery says: on our
        Profile and without hub rules associated directly, or the other way round; no other
        VPC holds our Profile."""
        for (account, vpc), mode in sorted(want.deliveries.items()):
            on_profile = (account, vpc) in seen.on_profile
            if mode == "profile":
                self.check(on_profile, f"{vpc} ({self.who(account)}) should hold our Profile")
                self.check(
                    (account, vpc) not in seen.direct,
                    f"{vpc} ({self.who(account)}) holds our Profile and still hub rules",
                )
            else:
                self.check(
                    not on_profile, f"{vpc} ({self.who(account)}) gets rules, not our Profile"
                )
        stray = seen.on_profile - want.may_hold
        self.check(not stray, f"VPCs that should not hold our Profile: {sorted(stray)}")

    def check_others(self, seen: Observed) -> None:
        """Rules not ours, and their associations, are exactly as the walk left them."""
        for foreign in self.foreign.values():
            self.check(
                self.fingerprint(foreign) == foreign.fingerprint,
                f"a rule not ours changed: {foreign.what} ({foreign.rule_id})",
            )
        made = {
            (self.vpcs[v].account, self.vpcs[v].region, rule_id, v)
            for v in self.vpcs
            for rule_id in self.vpcs[v].foreign.values()
        }
        self.check(
            seen.others == made,
            f"associations of rules not ours: AWS {seen.others} != made {made}",
        )

    def bad_input(self, region: str, field_name: str) -> None:
        """One reconcile of an item in doubt: an error naming it and the field, no write.

        A disabled item is checked field by field but not against AWS (`desired_rules` in
        desired.py runs `_check_hub` and `_shared_vpc_errors` for enabled hubs only), although
        the README says items are validated against AWS at every reconcile: for a disabled item
        whose fault only AWS shows (a VPC or endpoint that does not exist or is not the named
        VPC's) the walk accepts a report without the error, and still requires that nothing
        changed."""
        before = self.observe()
        report = self.mesh.resync()
        item = self.mesh.items.get(region, {})
        unnamed = not any(e.get("region") == region for e in report["errors"])
        if item.get("enabled", True) is False and field_name in LIVE_FIELDS and unnamed:
            # (the report may still not be ok: a conflict elsewhere)
            self.log[-1] += " (disabled: not checked against AWS, no error)"
            self.check(report["calls"]["writes"] == 0, f"a disabled item led to writes: {report}")
            after = self.observe()
            self.check(after.raw == before.raw, "a disabled item in doubt changed AWS")
            self.check_others(after)
            return
        self.check(not report["ok"], f"bad input reported ok: {report}")
        named = [
            e
            for e in report["errors"]
            if e.get("region") == region and f"field {field_name!r}" in e["message"]
        ]
        self.check(bool(named), f"no error names {region} and {field_name!r}: {report['errors']}")
        self.check(
            all(e["kind"] == "hub_item" and e.get("region") == region for e in report["errors"]),
            f"errors beyond the bad item: {report['errors']}",
        )
        self.check(report["calls"]["writes"] == 0, f"an item in doubt led to writes: {report}")
        after = self.observe()
        self.check(after.raw == before.raw, "an item in doubt changed what AWS holds")
        self.check_others(after)

    # --- the steps ------------------------------------------------------------------------------

    def candidates(self) -> list[tuple[int, Callable[[], Step]]]:
        items = self.mesh.items
        found: list[tuple[int, Callable[[], Step]]] = [
            (3, self.tag_vpc),
            (2, self.add_unmanaged_rule),
        ]
        if len(items) < len(self.regions):
            found.append((3, self.add_hub))
        if items:
            found += [
                (1, self.remove_hub),
                (2, self.toggle_hub),
                (3, self.add_workload_vpc),
                (2, self.change_domains),
                (1, self.set_peers),
                (2, self.malformed_item),
                (1, self.inbound_ip),
            ]
            if self.member:
                found.append((3, self.add_shared_vpc))
            if any(self.mesh.hubs[r].outbound_endpoint_id for r in items):
                found.append((2, self.add_spoke))
        if any(i.get("spokes") for i in items.values()):
            found += [(1, self.remove_spoke), (1, self.toggle_spoke)]
        if any(i.get("vpc_ids") for i in items.values()):
            found.append((2, self.remove_workload_vpc))
        if any(i.get("shared_vpcs") for i in items.values()):
            found.append((2, self.remove_shared_vpc))
        if any(v.tagged for v in self.vpcs.values()):
            found.append((2, self.untag_vpc))
        if any(v.deletable for v in self.vpcs.values()):
            found.append((1, self.delete_vpc))
        if any(v.foreign for v in self.vpcs.values()):
            found.append((2, self.drop_unmanaged_association))
        if self.organization:
            found.append((2, self.leave_ou if self.in_ou else self.join_ou))
        if self.profiles and items:
            found.append((2, self.set_delivery))
        return found

    def step(self) -> None:
        choices = self.candidates()
        chosen = self.rng.choices([c[1] for c in choices], weights=[c[0] for c in choices])[0]
        self.settle(chosen())

    def leave_ou(self) -> Step:
        if self.member_spokes():
            # README, *Organisations*: spoke rules of an account that leaves are found only
            # while it is swept; take such spokes out of the items first (the walk does).
            for region, item in list(self.mesh.items.items()):
                spokes = item.get("spokes", [])
                kept = [e for e in spokes if e.get("account_id") != self.member_id]
                if kept != spokes:
                    self.mesh.update(region, spokes=kept or None)
            self.settle(Step("take the member account's spokes out of the items", True))
        self.move(self.member_id, into_ou=False)
        named = " (an item still names it)" if self.named_by_items() else ""
        return Step(f"move the member account out of the OU of MEMBER_OUS{named}", True)

    def join_ou(self) -> Step:
        self.move(self.member_id, into_ou=True)
        return Step("move the member account back into the OU of MEMBER_OUS")

    def set_delivery(self) -> Step:
        region = self.rng.choice(sorted(self.mesh.items))
        current = self.mesh.items[region].get("delivery")
        choice = self.rng.choice([d for d in ("rules", "profile", None) if d != current])
        self.mesh.update(region, delivery=choice)
        return Step(f"delivery of {region}: {choice or 'default'}", shrinking=True)

    def add_hub(self) -> Step:
        region = self.rng.choice([r for r in self.regions if r not in self.mesh.items])
        self.mesh.put({**self.fresh_item(region), **self.random_domains()})
        return Step(f"add hub item {region} {self.mesh.items[region].get('domains') or ''}")

    def remove_hub(self) -> Step:
        region = self.rng.choice(sorted(self.mesh.items))
        for other, item in list(self.mesh.items.items()):
            if region in (item.get("peers") or []):
                self.mesh.update(other, peers=[p for p in item["peers"] if p != region])
        self.mesh.remove(region)
        return Step(f"remove hub item {region} (and from the peers of others)", shrinking=True)

    def toggle_hub(self) -> Step:
        region = self.rng.choice(sorted(self.mesh.items))
        if self.enabled(region):
            self.mesh.update(region, enabled=False)
            return Step(f"disable hub {region}", shrinking=True)
        self.mesh.update(region, enabled=self.rng.choice([True, None]))
        return Step(f"enable hub {region}")

    def add_workload_vpc(self) -> Step:
        region = self.rng.choice(sorted(self.mesh.items))
        item = self.mesh.items[region]
        vpc = self.spare_vpc(self.home, region) or self.new_vpc(self.home, region)
        self.seed_conflict(vpc)
        self.mesh.update(region, vpc_ids=[*item.get("vpc_ids", []), vpc.vpc_id])
        return Step(f"add workload VPC {vpc.vpc_id} to vpc_ids of {region}{self.about(vpc)}")

    def remove_workload_vpc(self) -> Step:
        region = self.rng.choice(sorted(r for r, i in self.mesh.items.items() if i.get("vpc_ids")))
        vpc_ids = list(self.mesh.items[region]["vpc_ids"])
        gone = self.rng.choice(vpc_ids)
        vpc_ids.remove(gone)
        self.mesh.update(region, vpc_ids=vpc_ids or None)
        return Step(f"remove workload VPC {gone} from vpc_ids of {region}", shrinking=True)

    def add_shared_vpc(self) -> Step:
        assert self.member is not None
        region = self.rng.choice(sorted(self.mesh.items))
        item = self.mesh.items[region]
        vpc = self.spare_vpc(self.member_id, region) or self.new_vpc(self.member_id, region)
        self.seed_conflict(vpc)
        entry: dict[str, Any] = {"vpc_id": vpc.vpc_id, **self.reach}
        if self.profiles and self.rng.random() < 0.4:
            entry["delivery"] = self.rng.choice(["rules", "profile"])
        self.mesh.update(region, shared_vpcs=[*item.get("shared_vpcs", []), entry])
        how = f" (delivery {entry['delivery']})" if "delivery" in entry else ""
        return Step(f"add member VPC {vpc.vpc_id} to shared_vpcs of {region}{how}{self.about(vpc)}")

    def remove_shared_vpc(self) -> Step:
        with_shared = sorted(r for r, i in self.mesh.items.items() if i.get("shared_vpcs"))
        region = self.rng.choice(with_shared)
        entries = list(self.mesh.items[region]["shared_vpcs"])
        gone = self.rng.choice(entries)
        entries.remove(gone)
        self.mesh.update(region, shared_vpcs=entries or None)
        return Step(
            f"remove member VPC {gone['vpc_id']} from shared_vpcs of {region}", shrinking=True
        )

    def add_spoke(self) -> Step:
        # no spoke in a member account out of the OU: it would be reached through the item only
        accounts = [a for a in self.clients if self.reached(a)]
        room = {
            r: [a for a in accounts if self.endpoint_room(a, r)]
            for r in self.mesh.items
            if self.mesh.hubs[r].outbound_endpoint_id
        }
        if not any(room.values()):  # every such Region has its quota of endpoints
            return self.tag_vpc()
        region = self.rng.choice(sorted(r for r, found in room.items() if found))
        account = self.rng.choice(room[region])
        cidr = f"10.{next(self.cidrs)}.0.0/16"
        spoke = build_spoke(self.clients[account], region, cidr, f"spoke-{next(self.names)}")
        self.vpcs[spoke.vpc_id] = Vpc(spoke.vpc_id, account, region, deletable=False)
        mode = self.rng.choice(["direct", "central"])
        extra: dict[str, Any] = dict(self.reach) if account == self.member_id else {}
        if mode == "central" and self.rng.random() < 0.5:
            extra["parent_domain"] = "amazonaws.com"
        entry = spoke_item(spoke, mode, **extra)
        spokes = [*self.mesh.items[region].get("spokes", []), entry]
        self.mesh.update(region, spokes=spokes)
        parent = f" parent {extra['parent_domain']}" if "parent_domain" in extra else ""
        return Step(f"add {self.who(account)} {mode}{parent} spoke {spoke.vpc_id} to {region}")

    def endpoint_room(self, account: str, region: str) -> bool:
        """Whether the account may make one more Resolver endpoint in the Region (AWS's
        default quota, which the emulator enforces a little later)."""
        resolver = self.clients[account]("route53resolver", region)
        return len(resolver.list_resolver_endpoints()["ResolverEndpoints"]) < ENDPOINTS_PER_REGION

    def remove_spoke(self) -> Step:
        region = self.rng.choice(sorted(r for r, i in self.mesh.items.items() if i.get("spokes")))
        spokes = list(self.mesh.items[region]["spokes"])
        gone = spokes.pop(self.rng.randrange(len(spokes)))
        self.mesh.update(region, spokes=spokes or None)
        return Step(f"remove spoke {gone['vpc_id']} from {region}", shrinking=True)

    def toggle_spoke(self) -> Step:
        region = self.rng.choice(sorted(r for r, i in self.mesh.items.items() if i.get("spokes")))
        spokes = [dict(e) for e in self.mesh.items[region]["spokes"]]
        spoke = self.rng.choice(spokes)
        disabling = spoke.get("enabled", True) is True
        if disabling:
            spoke["enabled"] = False
        else:
            spoke.pop("enabled", None)
        self.mesh.update(region, spokes=spokes)
        verb = "disable" if disabling else "enable"
        return Step(f"{verb} spoke {spoke['vpc_id']} of {region}", shrinking=disabling)

    def tag_vpc(self) -> Step:
        account = self.rng.choice(list(self.clients))
        region = self.rng.choice(self.regions)
        untagged = [
            v
            for v in self.vpcs.values()
            if v.account == account
            and v.region == region
            and not v.tagged
            and (self.listed_by(v) or ("", ""))[1] != "spokes"
        ]
        if untagged and self.rng.random() < 0.4:
            vpc = self.rng.choice(untagged)
            self.tag(vpc)
            return Step(f"tag {self.who(account)} VPC {vpc.vpc_id} in {region}")
        vpc = self.new_vpc(account, region)
        holding = self.seed_conflict(vpc)
        self.tag(vpc)
        return Step(f"new tagged {self.who(account)} VPC {vpc.vpc_id} in {region}{holding}")

    def untag_vpc(self) -> Step:
        vpc = self.rng.choice([v for v in self.vpcs.values() if v.tagged])
        self.clients[vpc.account]("ec2", vpc.region).delete_tags(
            Resources=[vpc.vpc_id], Tags=[{"Key": MESH_TAG_KEY}]
        )
        vpc.tagged = False
        return Step(
            f"untag {self.who(vpc.account)} VPC {vpc.vpc_id} in {vpc.region}", shrinking=True
        )

    def delete_vpc(self) -> Step:
        vpc = self.rng.choice([v for v in self.vpcs.values() if v.deletable])
        text = f"delete {self.who(vpc.account)} VPC {vpc.vpc_id} in {vpc.region}"
        listed = self.listed_by(vpc)
        if listed and not self.enabled(listed[0]):
            self.unlist(vpc, *listed)
            text += f" (first taken out of {listed[1]} of the disabled hub {listed[0]})"
            listed = None
        # as its owner must: every rule off the VPC first, then the VPC
        resolver = self.clients[vpc.account]("route53resolver", vpc.region)
        for page in resolver.get_paginator("list_resolver_rule_associations").paginate():
            for association in page["ResolverRuleAssociations"]:
                if association["VPCId"] == vpc.vpc_id:
                    resolver.disassociate_resolver_rule(
                        ResolverRuleId=association["ResolverRuleId"], VPCId=vpc.vpc_id
                    )
        profiles = self.clients[vpc.account]("route53profiles", vpc.region)
        for held in profiles.list_profile_associations(ResourceId=vpc.vpc_id)[
            "ProfileAssociations"
        ]:
            profiles.disassociate_profile(ProfileId=held["ProfileId"], ResourceId=vpc.vpc_id)
        self.clients[vpc.account]("ec2", vpc.region).delete_vpc(VpcId=vpc.vpc_id)
        del self.vpcs[vpc.vpc_id]
        for foreign in self.foreign.values():
            if foreign.rule_id in vpc.foreign.values():
                foreign.fingerprint = self.fingerprint(foreign)
        if listed:
            region, field_name = listed
            self.log.append(f"{text}, still listed in {field_name} of {region} [bad input]")
            self.bad_input(region, field_name)
            self.unlist(vpc, region, field_name)
            return Step(f"fix: take {vpc.vpc_id} out of {field_name} of {region}", True)
        return Step(text, shrinking=True)

    def unlist(self, vpc: Vpc, region: str, field_name: str) -> None:
        item = self.mesh.items[region]
        if field_name == "vpc_ids":
            rest = [v for v in item["vpc_ids"] if v != vpc.vpc_id]
        else:
            rest = [e for e in item["shared_vpcs"] if e["vpc_id"] != vpc.vpc_id]
        self.mesh.update(region, **{field_name: rest or None})

    def change_domains(self) -> Step:
        region = self.rng.choice(sorted(self.mesh.items))
        current = self.mesh.items[region].get("domains")
        current = tuple(current) if current else None
        choice = self.rng.choice([c for c in DOMAIN_CHOICES if c != current])
        self.mesh.update(region, domains=list(choice) if choice else None)
        return Step(f"domains of {region}: {list(choice) if choice else 'default'}", True)

    def set_peers(self) -> Step:
        region = self.rng.choice(sorted(self.mesh.items))
        others = sorted(r for r in self.mesh.items if r != region)
        peers: list[str] | None = None
        if self.rng.random() < 0.7:
            peers = sorted(self.rng.sample(others, self.rng.randint(0, len(others))))
        self.mesh.update(region, peers=peers)
        return Step(f"peers of {region}: {'default' if peers is None else peers}", True)

    def inbound_ip(self) -> Step:
        region = self.rng.choice(sorted(self.mesh.items))
        hub = self.mesh.hubs[region]
        resolver = self.clients[self.home]("route53resolver", region)
        subnet = self.clients[self.home]("ec2", region).describe_subnets(
            SubnetIds=[hub.subnet_ids[0]]
        )["Subnets"][0]
        address = {
            "SubnetId": hub.subnet_ids[0],
            "Ip": str(ip_network(subnet["CidrBlock"]).network_address + 20),
        }
        if region in self.spare_ips:
            resolver.disassociate_resolver_endpoint_ip_address(
                ResolverEndpointId=hub.inbound_endpoint_id, IpAddress=address
            )
            self.spare_ips.discard(region)
            return Step(f"inbound endpoint of {region} loses {address['Ip']}", True)
        resolver.associate_resolver_endpoint_ip_address(
            ResolverEndpointId=hub.inbound_endpoint_id, IpAddress=address
        )
        self.spare_ips.add(region)
        return Step(f"inbound endpoint of {region} gains {address['Ip']}", True)

    def malformed_item(self) -> Step:
        region = self.rng.choice(self.regions)
        hub = self.mesh.hubs[region]
        existing = self.mesh.items.get(region)
        base = dict(existing) if existing else self.fresh_item(region)
        bad: list[tuple[str, dict[str, Any]]] = [
            ("vpc_id", {"vpc_id": MISSING_VPC}),
            ("vpc_ids", {"vpc_ids": [*base.get("vpc_ids", []), MISSING_VPC]}),
            ("domains", {"domains": f"{region}.example.internal"}),
            ("peers", {"peers": ["eu-west-3"]}),
            ("enabled", {"enabled": "yes"}),
            ("vpcids", {"vpcids": [hub.vpc_id]}),
        ]
        if hub.outbound_endpoint_id:
            bad.append(("inbound_endpoint_id", {"inbound_endpoint_id": hub.outbound_endpoint_id}))
        if hub.outbound_endpoint_id:
            ghost = {"vpc_id": MISSING_VPC, "outbound_endpoint_id": MISSING_OUT, "mode": "direct"}
            bad.append(("spokes", {"spokes": [*base.get("spokes", []), ghost]}))
        if self.member and self.reached(self.member_id):  # else its role would reach it
            entry = {"vpc_id": MISSING_VPC, **self.reach}
            bad.append(("shared_vpcs", {"shared_vpcs": [*base.get("shared_vpcs", []), entry]}))
        field_name, change = self.rng.choice(bad)
        self.mesh.put({**base, **change})
        self.log.append(
            f"write {'the' if existing else 'a new'} item {region} with a bad {field_name}:"
            f" {change} [bad input]"
        )
        self.bad_input(region, field_name)
        if existing:
            self.mesh.put(existing)
            return Step(f"fix: restore the item {region}")
        if self.rng.random() < 0.5:
            self.mesh.remove(region)
            return Step(f"fix: remove the new item {region}")
        self.mesh.put(base)
        return Step(f"fix: write the item {region} right (a new hub)")

    def make_foreign(
        self, account: str, region: str, domain: str, vpc: Vpc | None, look_alike: bool = False
    ) -> str:
        """A rule that is not ours (optionally on `vpc`), recorded to be checked from now on."""
        resolver = self.clients[account]("route53resolver", region)
        n = next(self.names)
        hub = self.mesh.hubs[region]
        if look_alike:  # our owner tag and a name like ours: still not ours
            rule_id = resolver.create_resolver_rule(
                CreatorRequestId=f"look-alike-{uuid.uuid4().hex}",
                Name=f"resolver-mesh-{domain.rstrip('.').replace('.', '-')}"[:64],
                RuleType="SYSTEM",
                DomainName=domain,
                Tags=[{"Key": OWNER_TAG_KEY, "Value": DEFAULT_MESH_ID}],
            )["ResolverRule"]["Id"]
        elif account == self.home and hub.outbound_endpoint_id:
            rule_id = create_unmanaged_rule(
                self.clients[account],
                region,
                domain,
                hub.outbound_endpoint_id,
                "10.250.0.10",
                vpc_id=vpc.vpc_id if vpc else None,
                name=f"someone-elses-{n}",
            )
        else:
            rule_id = resolver.create_resolver_rule(
                CreatorRequestId=f"someone-else-{uuid.uuid4().hex}",
                Name=f"someone-elses-{n}",
                RuleType="SYSTEM",
                DomainName=domain,
            )["ResolverRule"]["Id"]
            if vpc is not None:  # named: moto sorts associations by name
                resolver.associate_resolver_rule(
                    ResolverRuleId=rule_id, VPCId=vpc.vpc_id, Name=f"someone-elses-{n}"
                )
        if vpc is not None:
            vpc.foreign[domain] = rule_id
        what = "look-alike" if look_alike else "on a VPC" if vpc else "loose"
        foreign = Foreign(account, region, rule_id, f"{what} rule {domain} in {region}")
        foreign.fingerprint = self.fingerprint(foreign)
        self.foreign[rule_id] = foreign
        return str(rule_id)

    def seed_conflict(self, vpc: Vpc) -> str:
        """Sometimes, before a VPC joins: a rule not ours for a domain its hub forwards."""
        if vpc.foreign or self.rng.random() > 0.5:
            return ""
        held = self.observe().held.get((vpc.account, vpc.vpc_id), set())
        forwarded = sorted(set(self.forwards().get(vpc.region, {})) - held)
        if not forwarded:
            return ""
        domain = self.rng.choice(forwarded)
        self.make_foreign(vpc.account, vpc.region, domain, vpc)
        return f" (holding a rule not ours for {domain})"

    def spare_vpc(self, account: str, region: str) -> Vpc | None:
        """An existing VPC of the account and Region that no item lists (rather one holding a
        rule not ours), or None: make a new one."""
        spare = sorted(
            (
                v
                for v in self.vpcs.values()
                if v.account == account and v.region == region and not self.listed_by(v)
            ),
            key=lambda v: not v.foreign,
        )
        if spare and self.rng.random() < 0.6:
            return (
                spare[0] if spare[0].foreign and self.rng.random() < 0.7 else self.rng.choice(spare)
            )
        return None

    def add_unmanaged_rule(self) -> Step:
        account = self.rng.choice(list(self.clients))
        region = self.rng.choice(self.regions)
        n = next(self.names)
        kind = self.rng.choice(["loose", "look-alike", "on a VPC", "on a VPC"])
        vpc: Vpc | None = None
        if kind == "on a VPC":
            choices = [v for v in self.vpcs.values() if v.account == account and v.region == region]
            vpc = self.rng.choice(choices) if choices else None
            kind = "on a VPC" if vpc else "loose"
        peers = [r for r in self.regions if r != region] or [region]
        target = self.rng.choice(peers)
        pool = [
            f"{target}.amazonaws.com.",
            f"{target}.vpce.amazonaws.com.",
            f"{target}.example.internal.",
            f"s3.{target}.amazonaws.com.",
            f"corp{n}.example.com.",
        ]
        if vpc is not None:
            held = self.observe().held.get((account, vpc.vpc_id), set())
            forwarded = [d for d in self.forwards().get(region, {}) if d not in held]
            if forwarded and self.rng.random() < 0.5:
                pool = forwarded
            # the hub VPC and spokes get no rule not ours for a domain the mesh may forward
            only_corp = vpc.vpc_id == self.mesh.hubs[region].vpc_id or not vpc.deletable
            if only_corp:
                pool = [f"corp{n}.example.com."]
            pool = [d for d in pool if d not in held]
        domain = self.rng.choice(sorted(pool))
        self.make_foreign(account, region, domain, vpc, look_alike=kind == "look-alike")
        where = f" on {vpc.vpc_id}" if vpc else ""
        return Step(f"{self.who(account)} rule not ours ({kind}) for {domain} in {region}{where}")

    def drop_unmanaged_association(self) -> Step:
        vpc = self.rng.choice([v for v in self.vpcs.values() if v.foreign])
        domain = self.rng.choice(sorted(vpc.foreign))
        rule_id = vpc.foreign.pop(domain)
        self.clients[vpc.account]("route53resolver", vpc.region).disassociate_resolver_rule(
            ResolverRuleId=rule_id, VPCId=vpc.vpc_id
        )
        self.foreign[rule_id].fingerprint = self.fingerprint(self.foreign[rule_id])
        return Step(f"take the rule not ours for {domain} off {vpc.vpc_id} in {vpc.region}")


@pytest.mark.parametrize(
    "plan",
    WALKS,
    ids=[
        f"seed{w.seed}"
        + ("-org" if w.organization else "")
        + ("-profile" if w.profiles else "")
        + (f"-{w.caught.replace(' ', '-')}" if w.caught else "")
        for w in WALKS
    ],
)
def test_a_random_walk_of_changes_converges_to_the_contract(
    plan: WalkPlan,
    make_mesh: Callable[..., Mesh],
    aws: ClientFactory,
    emulator: LocalEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walk = Walk(plan.seed, make_mesh, aws, emulator, monkeypatch, plan.organization, plan.profiles)
    try:
        walk.settle(Step("first reconcile of the world"))
        for _ in range(plan.steps):
            walk.step()
        print(walk.context())  # shown with -s
    finally:
        if walk.member is not None:
            walk.member.close()
