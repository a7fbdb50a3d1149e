"""Member accounts from AWS Organizations (`MEMBER_OUS`): the Lambda handler against the HTTP
emulator, where moto holds the organisation (nested OUs, more than 20 accounts, a suspended
one) and every account is reached by assuming its member role.

Every assertion reads the live state with plain boto3, in the account that holds it; a WSGI
middleware in front of the emulator sees the Organizations and AssumeRole calls as AWS would.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from meshkit import HOME_REGION, Mesh
from test_accounts_safety import RefusedRoles, refused_roles, shares, snapshot
from test_spokes_accounts import of_vpc, rules_and_vpcs

from mesh_emulator.server import LocalEmulator
from resolver_mesh.aws.shares import RamRegion
from resolver_mesh.local.topology import ClientFactory, assumed_clients
from resolver_mesh.names import MESH_TAG_KEY

EAST_2 = "us-east-2"
ROLE_NAME = "resolver-mesh-member-resolver-mesh"  # member.yaml's name for MeshId resolver-mesh
PEER_DOMAINS = {f"{EAST_2}.{d}." for d in ("amazonaws.com", "vpce.amazonaws.com")}
ORGANIZATIONS_TARGET = "AWSOrganizationsV20161128."

__all__ = ["refused_roles"]  # the fixture, shared with test_accounts_safety


def role_of(account: str, name: str = ROLE_NAME) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


@dataclass
class Watch:
    """WSGI middleware in front of the emulator: counts Organizations calls by operation,
    records the roles assumed, and, while `deny_organizations` is set, answers every
    Organizations call 400 AccessDeniedException as AWS does for a principal without the
    permission (not the management account nor a delegated administrator); while
    `without_state` is set, the accounts Organizations lists carry no `State` (nor the
    `Status` AWS retired, which the emulator already leaves out). While `hold_walk` is set,
    an Organizations call after the first is answered only once a role has been assumed (at
    most `HOLD_SECONDS` later): `walk_held` records whether each one had to wait that long.
    An account of `hidden` is left out of the pages of accounts that list it, as many times as
    its count says: as a walk misses an account moved from one OU to another while it goes on."""

    app: Any
    organizations: Counter[str] = field(default_factory=Counter)
    assumed: list[str] = field(default_factory=list)
    deny_organizations: bool = False
    without_state: bool = False
    statuses_seen: int = 0  # accounts listed with a `Status`, as AWS no longer answers
    hold_walk: bool = False
    walk_held: list[bool] = field(default_factory=list)
    hidden: Counter[str] = field(default_factory=Counter)
    _assuming: threading.Condition = field(default_factory=threading.Condition)

    HOLD_SECONDS = 20.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if target.startswith(ORGANIZATIONS_TARGET):
            if self.hold_walk and sum(self.organizations.values()):
                with self._assuming:
                    waited = self._assuming.wait_for(lambda: self.assumed, self.HOLD_SECONDS)
                self.walk_held.append(not waited)
            self.organizations[target.removeprefix(ORGANIZATIONS_TARGET)] += 1
            if self.deny_organizations:
                payload = json.dumps(
                    {
                        "__type": "AccessDeniedException",
                        "Message": "You don't have permissions to access this resource.",
                    }
                ).encode()
                start_response(
                    "400 Bad Request",
                    [
                        ("Content-Type", "application/x-amz-json-1.1"),
                        ("Content-Length", str(len(payload))),
                    ],
                )
                return [payload]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        if form.get("Action") == ["AssumeRole"]:
            with self._assuming:
                self.assumed.append(form.get("RoleArn", [""])[0])
                self._assuming.notify_all()
        if not target.startswith(ORGANIZATIONS_TARGET + "ListAccounts"):
            return self.app(environ, start_response)
        answered: list[Any] = []
        body = b"".join(self.app(environ, lambda *given: answered.append(given)))
        status, headers = answered[0][0], answered[0][1]
        if status.startswith("200"):
            page = json.loads(body)
            self.statuses_seen += sum("Status" in a for a in page.get("Accounts", []))
            if self.without_state:
                for account in page.get("Accounts", []):
                    account.pop("State", None)
            for account in list(page.get("Accounts", [])):
                if self.hidden[account["Id"]] > 0:
                    self.hidden[account["Id"]] -= 1
                    page["Accounts"].remove(account)
            body = json.dumps(page).encode()
        kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*kept, ("Content-Length", str(len(body)))])
        return [body]


@dataclass
class Org:
    """The organisation on the emulator: its root, OUs by name and accounts by OU name."""

    client: Any
    root: str
    ous: dict[str, str]
    accounts: dict[str, list[str]]
    management: str

    def move(self, account: str, source: str, destination: str) -> None:
        self.client.move_account(
            AccountId=account,
            SourceParentId=self.ous[source],
            DestinationParentId=self.ous[destination],
        )


@pytest.fixture
def watch(emulator: LocalEmulator) -> Iterator[Watch]:
    with emulator.wrapped(Watch) as watching:
        yield watching


@pytest.fixture
def org(aws: ClientFactory) -> Org:
    """The home account creates the organisation: OU `workloads` with 12 accounts, nested in
    it `prod` with 10 (one of them suspended) and, under that, `deep` with 2; `sandbox`
    beside `workloads` with 2. 26 accounts in all, 23 ACTIVE under `workloads`."""
    client = aws("organizations", HOME_REGION)
    client.create_organization(FeatureSet="ALL")
    root = client.list_roots()["Roots"][0]["Id"]
    ous = {"root": root}
    for name, parent in (
        ("workloads", "root"),
        ("prod", "workloads"),
        ("deep", "prod"),
        ("sandbox", "root"),
    ):
        made = client.create_organizational_unit(ParentId=ous[parent], Name=name)
        ous[name] = made["OrganizationalUnit"]["Id"]
    accounts: dict[str, list[str]] = {}
    for name, count in (("workloads", 12), ("prod", 10), ("deep", 2), ("sandbox", 2)):
        accounts[name] = []
        for n in range(count):
            status = client.create_account(
                Email=f"{name}{n}@example.com", AccountName=f"{name}-{n}"
            )["CreateAccountStatus"]
            client.move_account(
                AccountId=status["AccountId"], SourceParentId=root, DestinationParentId=ous[name]
            )
            accounts[name].append(status["AccountId"])
    client.close_account(AccountId=accounts["prod"][0])  # SUSPENDED from then on
    management = aws("sts", HOME_REGION).get_caller_identity()["Account"]
    return Org(client, root, ous, accounts, management)


@pytest.fixture
def pair(make_mesh: Callable[..., Mesh]) -> Mesh:
    """Two hubs of the home account: us-east-1 (with a workload VPC) and us-east-2."""
    return make_mesh(regions=(HOME_REGION, EAST_2))


def members_in(result: dict[str, Any], region: str = HOME_REGION) -> set[str]:
    """The other accounts a reconcile read in `region`."""
    return {
        where.split("@")[1]
        for where in result["regions"]
        if "@" in where and where.split("@")[0] == region
    }


def active_under_workloads(org: Org) -> set[str]:
    return set(org.accounts["workloads"] + org.accounts["prod"][1:] + org.accounts["deep"])


def test_members_are_read_while_the_organisation_is_walked(
    pair: Mesh, org: Org, watch: Watch
) -> None:
    """The walk goes one page at a time at 4 calls/s (some 4 s at 300 accounts); the reads do
    not wait for it: each account is reached (its member role assumed, then read) as soon as
    the page listing it is read. Here the emulator answers the walk's next page only once a
    member role has been assumed: with reads that waited for the whole walk, it would wait in
    vain for 20 s each time. The result is the same as ever."""
    watch.hold_walk = True
    pair.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    result = pair.resync()
    assert result["ok"], result["errors"]
    assert members_in(result) == members_in(result, EAST_2) == active_under_workloads(org)
    assert len(watch.walk_held) >= 4  # the first page, then the OUs and the nested pages
    assert not any(watch.walk_held)  # none of the later pages waited for the reads to start


def test_every_active_account_of_an_ou_and_its_nested_ous_is_a_member(
    pair: Mesh, org: Org, watch: Watch
) -> None:
    pair.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    result = pair.resync()
    assert result["ok"], result["errors"]

    expected = active_under_workloads(org)
    assert len(expected) == 23
    assert members_in(result) == members_in(result, EAST_2) == expected
    assert org.accounts["prod"][0] not in members_in(result)  # SUSPENDED
    assert not members_in(result) & set(org.accounts["sandbox"])
    assert {role_of(a) for a in expected} <= set(watch.assumed)
    assert watch.statuses_seen == 0  # found by `State` alone, as AWS answers since 2026-09-09

    # Bounded by pages: per OU its account pages and its child-OU pages, not per account.
    per_ou = {"workloads": 12, "prod": 10, "deep": 2}
    pages = sum(-(-n // 20) for n in per_ou.values()) + len(per_ou)
    assert sum(watch.organizations.values()) <= pages
    assert set(watch.organizations) == {
        "ListAccountsForParent",
        "ListOrganizationalUnitsForParent",
    }

    watch.organizations.clear()
    again = pair.resync()
    assert again["ok"]
    assert again["changes"] == []
    assert sum(watch.organizations.values()) <= pages  # once per reconcile, whatever the passes


def test_a_root_id_makes_every_active_account_but_the_reconcilers_own_a_member(
    pair: Mesh, org: Org, watch: Watch
) -> None:
    pair.monkeypatch.setenv("MEMBER_OUS", f"{org.ous['sandbox']},{org.root}")
    result = pair.resync()
    assert result["ok"], result["errors"]
    every = {a for accounts in org.accounts.values() for a in accounts} - {org.accounts["prod"][0]}
    assert members_in(result) == every
    assert org.management not in members_in(result)
    # the whole organisation, page by page, once its root is known to be the one named
    assert watch.organizations["ListRoots"] == 1
    assert set(watch.organizations) == {"ListRoots", "ListAccounts"}
    assert watch.organizations["ListAccounts"] <= -(-(len(every) + 1) // 20)


@pytest.mark.parametrize(
    "why",
    [
        "an OU that does not exist",
        "a root that is not the organisation's",
        "AccessDenied",
        "no organisation",
        "accounts without State",
    ],
)
def test_an_unreadable_organisation_changes_nothing_anywhere(
    pair: Mesh, aws: ClientFactory, org: Org, watch: Watch, why: str
) -> None:
    pair.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    assert pair.resync()["ok"]
    before = snapshot(pair, aws)
    assert any(before.values())  # rules of ours that a wrong plan would delete

    ous = org.ous["workloads"]
    if why == "an OU that does not exist":
        ous += ",ou-zzzz-99999999"
    elif why == "a root that is not the organisation's":
        ous += ",r-zz99"
    elif why == "AccessDenied":
        watch.deny_organizations = True
    elif why == "accounts without State":  # were they read as not ACTIVE, all would be swept
        watch.without_state = True
    else:
        for parent in ("deep", "prod", "workloads", "sandbox"):
            for account in org.accounts[parent]:
                org.client.remove_account_from_organization(AccountId=account)
            org.client.delete_organizational_unit(OrganizationalUnitId=org.ous[parent])
        org.client.delete_organization()
    pair.monkeypatch.setenv("MEMBER_OUS", ous)
    pair.remove(EAST_2)  # a change that would delete rules everywhere, were it planned
    result = pair.resync()

    assert not result["ok"]
    assert result["changes"] == []
    [error] = [e for e in result["errors"] if e["kind"] == "organization"]
    assert "MEMBER_OUS" in error["message"]
    assert "nothing is planned" in error["message"]
    if why == "accounts without State":
        assert "is listed without its State" in error["message"]
    if why == "a root that is not the organisation's":
        assert f"r-zz99 is not the root of this organisation ({org.root})" in error["message"]
    assert snapshot(pair, aws) == before
    assert pair.plan()["changes"] == []


def test_an_account_that_leaves_the_ous_is_swept_then_no_longer_visited(
    pair: Mesh, aws: ClientFactory, org: Org, emulator: LocalEmulator, watch: Watch
) -> None:
    leaving, staying = org.accounts["prod"][1], org.accounts["prod"][2]
    pair.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    clients = {
        a: assumed_clients(aws, role_of(a), None, emulator.endpoint_url) for a in (leaving, staying)
    }
    vpcs = {
        a: c("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
        for a, c in clients.items()
    }
    entries = [{"vpc_id": vpcs[a], "account_id": a, "role_arn": role_of(a)} for a in vpcs]
    pair.update(HOME_REGION, shared_vpcs=entries)
    assert pair.resync()["ok"]
    for account, c in clients.items():
        assert set(of_vpc(rules_and_vpcs(c), vpcs[account])) == PEER_DOMAINS
    [share] = shares(aws).values()
    assert share["PRINCIPAL"] == {leaving, staying}

    # The account moves out of the OUs, and nothing names it any more.
    org.move(leaving, "prod", "sandbox")
    pair.update(HOME_REGION, shared_vpcs=[e for e in entries if e["account_id"] == staying])
    planned = pair.plan()  # a plan says what a resync would sweep, not that it swept
    [to_sweep] = [n for n in planned["notes"] if n.startswith("no longer members, to be swept:")]
    assert leaving in to_sweep
    assert not [n for n in planned["notes"] if n.startswith("no longer members, swept:")]
    result = pair.resync()
    assert result["ok"], result["errors"]
    swept = {(c["kind"], c.get("account")) for c in result["changes"]}
    assert swept == {("disassociate", leaving), ("unshare", None)}, result["changes"]
    [unshared] = [c for c in result["changes"] if c["kind"] == "unshare"]
    assert unshared["principals"] == [leaving]
    assert all(c["status"] == "applied" for c in result["changes"])
    # said once, whatever pass swept it (sharing takes more than one)
    [note] = [n for n in result["notes"] if n.startswith("no longer members, swept:")]
    assert leaving in note
    assert rules_and_vpcs(clients[leaving]) == {}  # shared rules no longer visible, nor used
    assert all(vpcs[leaving] not in r["vpcs"] for r in rules_and_vpcs(aws).values())
    [share] = shares(aws).values()
    assert share["PRINCIPAL"] == {staying}
    assert set(of_vpc(rules_and_vpcs(clients[staying]), vpcs[staying])) == PEER_DOMAINS

    watch.assumed.clear()
    later = pair.resync()
    assert later["ok"]
    assert later["changes"] == []
    assert not any(n.startswith("no longer members") for n in later["notes"])
    assert leaving not in members_in(later) | members_in(later, EAST_2)
    assert role_of(leaving) not in watch.assumed


def test_an_items_explicit_role_wins_for_its_account_and_other_accounts_still_work(
    pair: Mesh, aws: ClientFactory, org: Org, emulator: LocalEmulator, watch: Watch
) -> None:
    member = org.accounts["workloads"][0]  # in the OU, named by the item with a role of its own
    outsider = org.accounts["sandbox"][0]  # outside the OUs, named by the item only
    custom = role_of(member, "custom-mesh-role")
    pair.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    vpcs = {}
    for account, role in ((member, custom), (outsider, role_of(outsider))):
        c = assumed_clients(aws, role, "ext-id-1", emulator.endpoint_url)
        vpcs[account] = (c, c("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"])
    pair.update(
        HOME_REGION,
        shared_vpcs=[
            {"vpc_id": vpc["VpcId"], "account_id": a, "role_arn": role, "external_id": "ext-id-1"}
            for (a, role), (_, vpc) in zip(
                ((member, custom), (outsider, role_of(outsider))), vpcs.values(), strict=True
            )
        ],
    )
    watch.assumed.clear()
    result = pair.resync()
    assert result["ok"], result["errors"]
    assert custom in watch.assumed
    assert role_of(member) not in watch.assumed
    assert outsider in members_in(result)
    assert members_in(result) == active_under_workloads(org) | {outsider}
    for c, vpc in vpcs.values():
        assert set(of_vpc(rules_and_vpcs(c), vpc["VpcId"])) == PEER_DOMAINS


def tagged_vpc_each(clients: Mapping[str, ClientFactory], mesh_id: str) -> dict[str, str]:
    """One VPC tagged to join `mesh_id` in the home Region of each account: account -> VPC."""
    tag = {"ResourceType": "vpc", "Tags": [{"Key": MESH_TAG_KEY, "Value": mesh_id}]}
    return {
        account: client("ec2", HOME_REGION).create_vpc(
            CidrBlock="10.200.0.0/16", TagSpecifications=[tag]
        )["Vpc"]["VpcId"]
        for account, client in clients.items()
    }


@pytest.mark.parametrize("sharing_enabled", [True, False])
def test_an_organisation_converges_in_one_pass_with_or_without_invitations(
    pair: Mesh,
    aws: ClientFactory,
    org: Org,
    emulator: LocalEmulator,
    sharing_enabled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The members follow the hub's share in the pass that makes it: each reads its pending
    invitations once, after the share is made. With RAM sharing enabled in the organisation,
    its accounts get the hub's rules without invitations (the emulator follows the RAM User
    Guide): none is found, nothing is accepted, and they associate the rules at once; without
    it, each accepts its invitation, then associates. One pass either way (two before members
    followed the share, three before acceptance and association shared a pass), and no
    invitation read once converged."""
    invitation_reads: list[str] = []
    pending = RamRegion.pending_invitations

    def counted(self: RamRegion) -> Any:
        invitation_reads.append(self.region)
        return pending(self)

    monkeypatch.setattr(RamRegion, "pending_invitations", counted)
    if sharing_enabled:
        aws("ram", HOME_REGION).enable_sharing_with_aws_organization()
    members = sorted(org.accounts["deep"] + org.accounts["workloads"][:2])
    pair.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    clients = {a: assumed_clients(aws, role_of(a), None, emulator.endpoint_url) for a in members}
    vpcs = tagged_vpc_each(clients, pair.mesh_id)

    result = pair.resync()
    assert result["ok"], result["errors"]
    for account, c in clients.items():
        assert set(of_vpc(rules_and_vpcs(c), vpcs[account])) == PEER_DOMAINS, account
    accepted = result["counts"].get("accept_share", 0)
    assert not [n for n in result["notes"] if "passes" in n]
    assert accepted == (0 if sharing_enabled else len(members))
    acceptances = {c["status"] for c in result["changes"] if c["kind"] == "accept_share"}
    assert acceptances == {"no invitation" if sharing_enabled else "applied"}
    assert invitation_reads == [HOME_REGION] * len(members)
    assert result["counts"]["associate"] >= len(members) * len(PEER_DOMAINS)
    assert pair.resync()["changes"] == []
    assert len(invitation_reads) == len(members)  # none more


def test_vpcs_tagged_in_twenty_accounts_of_the_ous_join_and_the_guard_holds_over_them(
    pair: Mesh, aws: ClientFactory, org: Org, emulator: LocalEmulator
) -> None:
    """Organisation scale end to end: the 23 ACTIVE accounts under `workloads` are members
    through the OU alone, each tags one VPC and it joins the home Region's hub (shared through
    RAM, accepted, associated) with no item naming it; a no-op writes nothing; and a change
    that would take the rules off every one of them is refused as a whole before any write."""
    members = sorted(active_under_workloads(org))
    assert len(members) >= 20
    pair.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    clients = {a: assumed_clients(aws, role_of(a), None, emulator.endpoint_url) for a in members}
    vpcs = tagged_vpc_each(clients, pair.mesh_id)

    result = pair.resync()
    assert result["ok"], result["errors"]
    assert {(j["account"], j["vpc_id"]) for j in result["joined"]} >= set(vpcs.items())
    for account, c in clients.items():
        assert set(of_vpc(rules_and_vpcs(c), vpcs[account])) == PEER_DOMAINS, account
    [share] = shares(aws).values()
    assert share["PRINCIPAL"] == set(members)
    assert (
        pair.resync()["counts"]
        == pair.plan()["counts"]
        == {kind: 0 for kind in pair.resync()["counts"]}
    )

    before = snapshot(pair, aws)
    pair.remove(EAST_2)  # every member VPC would lose its 2 rules to us-east-2
    refused = pair.resync()
    assert refused["refused"], refused
    assert not [c for c in refused["changes"] if c["status"] == "applied"]
    assert snapshot(pair, aws) == before
    for account, c in clients.items():
        assert set(of_vpc(rules_and_vpcs(c), vpcs[account])) == PEER_DOMAINS, account


@dataclass
class TagJoined:
    """Two accounts of `prod` whose VPCs joined the home hub by tag alone (no item names
    them): `leaving` is about to leave the organisation's OUs, `staying` stays."""

    leaving: str
    staying: str
    clients: dict[str, ClientFactory]
    vpcs: dict[str, str]


def leave(org: Org, account: str, how: str) -> None:
    if how == "moved out of the OUs":
        org.move(account, "prod", "sandbox")
    else:
        org.client.remove_account_from_organization(AccountId=account)


@pytest.fixture
def tag_joined(pair: Mesh, aws: ClientFactory, org: Org, emulator: LocalEmulator) -> TagJoined:
    leaving, staying = org.accounts["prod"][1], org.accounts["prod"][2]
    pair.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    clients = {
        a: assumed_clients(aws, role_of(a), None, emulator.endpoint_url) for a in (leaving, staying)
    }
    vpcs = tagged_vpc_each(clients, pair.mesh_id)
    first = pair.resync()
    assert first["ok"], first["errors"]
    assert {(j["account"], j["vpc_id"], j["role"]) for j in first["joined"]} == {
        (a, vpc, "shared") for a, vpc in vpcs.items()
    }
    for account, c in clients.items():
        assert set(of_vpc(rules_and_vpcs(c), vpcs[account])) == PEER_DOMAINS
    [share] = shares(aws).values()
    assert share["PRINCIPAL"] == {leaving, staying}
    return TagJoined(leaving, staying, clients, vpcs)


def test_verify_reads_the_tags_of_the_accounts_of_the_ous(
    pair: Mesh, watch: Watch, tag_joined: TagJoined
) -> None:
    """`verify` finds the members as a reconcile does: the VPCs tagged in accounts of
    `MEMBER_OUS`, which no item and no `MEMBER_ROLES` names, are in its matrix; an
    organisation it cannot read is an error, never a smaller mesh that reads as fine."""
    result = pair.cli("verify", "--json")
    assert result.code == 0, result.out
    shown = {(v["vpc_id"], v["role"], v.get("account")) for v in result.json["vpcs"]}
    assert {(vpc, "shared", a) for a, vpc in tag_joined.vpcs.items()} <= shown
    cells = [c for c in result.json["cells"] if c["vpc_id"] in tag_joined.vpcs.values()]
    assert {c["status"] for c in cells} == {"private", "local"}  # peers' names, its own

    watch.deny_organizations = True
    denied = pair.cli("verify", "--json")
    assert denied.code == 1
    [error] = [e for e in denied.json["errors"] if "MEMBER_OUS" in e]
    assert "cannot list the accounts of the organisation" in error
    assert "AccessDeniedException" in error


@pytest.mark.parametrize("how", ["moved out of the OUs", "removed from the organisation"])
def test_a_tag_joined_account_that_leaves_is_swept_then_no_longer_visited(
    pair: Mesh, aws: ClientFactory, org: Org, watch: Watch, tag_joined: TagJoined, how: str
) -> None:
    """The account's VPC joined by tag only: once the account leaves, the next reconcile
    takes the shared rules off that VPC (through the member role the StackSet retains) and
    the account off the share, says so once, and changes nothing else; then it is forgotten."""
    leaving, staying, clients, vpcs = (
        tag_joined.leaving,
        tag_joined.staying,
        tag_joined.clients,
        tag_joined.vpcs,
    )
    home_before = snapshot(pair, aws)
    staying_before = snapshot(pair, clients[staying])

    leave(org, leaving, how)
    result = pair.resync()

    assert result["ok"], result["errors"]
    assert not result["refused"]
    swept = {(c["kind"], c.get("account")) for c in result["changes"]}
    assert swept == {("disassociate", leaving), ("unshare", None)}, result["changes"]
    assert {c["vpc_id"] for c in result["changes"] if c["kind"] == "disassociate"} == {
        vpcs[leaving]
    }
    [unshared] = [c for c in result["changes"] if c["kind"] == "unshare"]
    assert unshared["principals"] == [leaving]
    assert all(c["status"] == "applied" for c in result["changes"])
    [note] = [n for n in result["notes"] if n.startswith("no longer members, swept:")]
    assert leaving in note
    assert {j["account"] for j in result["joined"]} == {staying}
    assert rules_and_vpcs(clients[leaving]) == {}  # shared rules no longer visible, nor used
    [share] = shares(aws).values()
    assert share["PRINCIPAL"] == {staying}
    # Nothing else changed: the hub's rules and the staying member's associations.
    assert snapshot(pair, aws) == home_before
    assert snapshot(pair, clients[staying]) == staying_before

    watch.assumed.clear()
    later = pair.resync()
    assert later["ok"], later["errors"]
    assert later["changes"] == []
    assert not any(n.startswith("no longer members") for n in later["notes"])
    assert leaving not in members_in(later) | members_in(later, EAST_2)
    assert role_of(leaving) not in watch.assumed


def test_a_member_one_walk_missed_is_found_again_and_never_swept(
    pair: Mesh, aws: ClientFactory, watch: Watch, tag_joined: TagJoined
) -> None:
    """The walk is no snapshot: an account moved from one OU of `MEMBER_OUS` to another while
    it went on may be listed by neither. Our share still names it, so it would read as an
    account that left and be swept; walked again, the organisation lists it: nothing is
    planned anywhere, and the error says why. The next reconcile reads it as a member."""
    staying, clients, vpcs = tag_joined.staying, tag_joined.clients, tag_joined.vpcs
    home_before = snapshot(pair, aws)
    member_before = snapshot(pair, clients[staying])
    watch.organizations.clear()
    watch.hidden[staying] = 1
    result = pair.resync()
    assert not result["ok"]
    assert result["changes"] == []
    [error] = [e for e in result["errors"] if e["kind"] == "organization"]
    assert staying in error["message"]
    assert "not listed by the first walk of the organisation" in error["message"]
    assert watch.hidden[staying] == 0  # the second walk listed it
    assert snapshot(pair, aws) == home_before
    assert snapshot(pair, clients[staying]) == member_before
    assert set(of_vpc(rules_and_vpcs(clients[staying]), vpcs[staying])) == PEER_DOMAINS

    again = pair.resync()
    assert again["ok"], again["errors"]
    assert again["changes"] == []


def test_an_item_with_errors_never_reaches_a_member_with_its_own_role(
    pair: Mesh, aws: ClientFactory, watch: Watch, tag_joined: TagJoined
) -> None:
    """An item with errors still names accounts, read where no other role reaches them; a
    member of `MEMBER_OUS` is reached through the member role, whatever role a broken item
    gives it, and its VPCs that joined by tag keep the hub's rules and its share."""
    staying, clients, vpcs = tag_joined.staying, tag_joined.clients, tag_joined.vpcs
    wrong = f"arn:aws:iam::{staying}:role/not-the-member-role"
    entry = {"vpc_id": "vpc-0123456789abcdef0", "account_id": staying, "role_arn": wrong}
    pair.update(EAST_2, peers=["ap-south-1"], shared_vpcs=[entry])
    watch.assumed.clear()
    result = pair.resync()
    assert [e["field"] for e in result["errors"] if e.get("region") == EAST_2] == ["peers"]
    assert wrong not in watch.assumed  # (moto would let it be assumed)
    assert set(of_vpc(rules_and_vpcs(clients[staying]), vpcs[staying])) == PEER_DOMAINS
    [share] = shares(aws).values()
    assert staying in share["PRINCIPAL"]


def test_a_tag_joined_account_that_leaves_with_its_role_refused_only_loses_the_share(
    pair: Mesh,
    aws: ClientFactory,
    org: Org,
    watch: Watch,
    tag_joined: TagJoined,
    refused_roles: RefusedRoles,
) -> None:
    """The account left and its member role no longer lets the reconciler in: its location
    is reported unreadable once, nothing is written there, the share stops naming it, and
    nothing is deleted anywhere else (the hub's rules, the other member's associations)."""
    leaving, staying, clients = tag_joined.leaving, tag_joined.staying, tag_joined.clients
    home_before = snapshot(pair, aws)
    staying_before = snapshot(pair, clients[staying])
    assert rules_and_vpcs(clients[leaving])  # the shared rules, on its tagged VPC

    leave(org, leaving, "moved out of the OUs")
    refused_roles.accounts = frozenset({leaving})
    pair.monkeypatch.setattr("app._aws", None)  # a cold start: no credentials cached
    result = pair.resync()

    assert refused_roles.refused > 0
    assert not result["ok"]
    assert not result["refused"]
    unreadable = {e["region"] for e in result["errors"]}
    assert unreadable == {f"{r}@{leaving}" for r in (HOME_REGION, EAST_2)}, result["errors"]
    assert all("AccessDenied" in e["message"] for e in result["errors"])
    assert [(c["kind"], c["status"]) for c in result["changes"]] == [("unshare", "applied")]
    [unshared] = [c for c in result["changes"] if c["kind"] == "unshare"]
    assert unshared["principals"] == [leaving]
    [note] = [n for n in result["notes"] if n.startswith("no longer members, swept:")]
    assert leaving in note
    [share] = shares(aws).values()
    assert share["PRINCIPAL"] == {staying}
    assert snapshot(pair, aws) == home_before
    assert snapshot(pair, clients[staying]) == staying_before
    refused_roles.accounts = frozenset()
    assert rules_and_vpcs(clients[leaving]) == {}  # unshared: RAM took the rules away

    refused_roles.accounts = frozenset({leaving})
    refused_roles.refused = 0
    later = pair.resync()
    assert later["ok"], later["errors"]
    assert later["changes"] == []
    assert refused_roles.refused == 0  # not visited again
    assert leaving not in members_in(later) | members_in(later, EAST_2)


def test_an_account_tag_joined_in_every_hub_region_leaves_without_tripping_the_guard(
    mesh: Mesh, aws: ClientFactory, org: Org, emulator: LocalEmulator
) -> None:
    """Three hubs (12 managed rules, over the guard's minimum of 10) and three accounts whose
    VPCs joined by tag in every hub Region: one account leaving withdraws every hub rule from
    that one account, a third of the accounts using each rule, which is not a mass change."""
    accounts = org.accounts["prod"][1:4]
    leaving, staying = accounts[0], accounts[1:]
    mesh.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    clients = {a: assumed_clients(aws, role_of(a), None, emulator.endpoint_url) for a in accounts}
    tag = {"ResourceType": "vpc", "Tags": [{"Key": MESH_TAG_KEY, "Value": mesh.mesh_id}]}
    vpcs = {
        (a, region): c("ec2", region).create_vpc(
            CidrBlock="10.200.0.0/16", TagSpecifications=[tag]
        )["Vpc"]["VpcId"]
        for a, c in clients.items()
        for region in mesh.hubs
    }
    first = mesh.resync()
    assert first["ok"], first["errors"]
    assert len(first["joined"]) == len(vpcs) == 9
    converged = mesh.resync()  # one pass made it all (the accounts followed the shares)
    assert (converged["changes"], converged["managed_rules"]) == ([], 12)
    before = {a: snapshot(mesh, clients[a]) for a in staying}
    home_before = snapshot(mesh, aws)

    org.move(leaving, "prod", "sandbox")
    result = mesh.resync()

    assert result["ok"], result["errors"]
    assert not result["refused"]
    assert {(c["kind"], c.get("account"), c["status"]) for c in result["changes"]} == {
        ("disassociate", leaving, "applied"),
        ("unshare", None, "applied"),
    }
    assert {c["vpc_id"] for c in result["changes"] if c["kind"] == "disassociate"} == {
        vpc for (a, _), vpc in vpcs.items() if a == leaving
    }
    for region in mesh.hubs:
        assert rules_and_vpcs(clients[leaving], region) == {}
    assert snapshot(mesh, aws) == home_before
    assert {a: snapshot(mesh, clients[a]) for a in staying} == before


@pytest.mark.parametrize("leavers", [1, 2])
def test_accounts_leaving_the_ous_take_our_profile_off_their_vpcs_or_trip_the_guard(
    make_mesh: Callable[..., Mesh],
    aws: ClientFactory,
    org: Org,
    emulator: LocalEmulator,
    leavers: int,
) -> None:
    """Three hubs delivering through Profiles (12 managed rules, over the guard's minimum);
    three accounts with two VPCs each tagged to join us-east-1's hub, served by its Profile
    through the share (4 rules on each VPC). An account that leaves the OUs is read for its
    Profiles as it is swept: one leaving loses our Profile on both its VPCs, then the share; two
    leaving at once would take 16 of the 24 rules the Profile gives other accounts' VPCs, and
    the guard refuses it before anything is written."""
    mesh = make_mesh(regions=(HOME_REGION, EAST_2, "us-west-2"))
    mesh.monkeypatch.setenv("DELIVERY", "profile")
    mesh.monkeypatch.setenv("MEMBER_OUS", org.ous["workloads"])
    accounts = org.accounts["prod"][1:4]
    clients = {a: assumed_clients(aws, role_of(a), None, emulator.endpoint_url) for a in accounts}
    tag = {"ResourceType": "vpc", "Tags": [{"Key": MESH_TAG_KEY, "Value": mesh.mesh_id}]}
    vpcs = {
        a: [
            c("ec2", HOME_REGION).create_vpc(
                CidrBlock=f"10.{200 + n}.0.0/16", TagSpecifications=[tag]
            )["Vpc"]["VpcId"]
            for n in range(2)
        ]
        for a, c in clients.items()
    }
    first = mesh.resync()
    assert first["ok"], first["errors"]
    assert mesh.resync()["changes"] == []

    def on_profile(account: str) -> dict[str, list[str]]:
        profiles = clients[account]("route53profiles", HOME_REGION)
        return {
            vpc: [
                a["ProfileId"]
                for a in profiles.list_profile_associations(ResourceId=vpc)["ProfileAssociations"]
            ]
            for vpc in vpcs[account]
        }

    [profile_id] = {p for a in accounts for held in on_profile(a).values() for p in held}
    assert all(on_profile(a) == {v: [profile_id] for v in vpcs[a]} for a in accounts)
    home_before = snapshot(mesh, aws)

    leaving, staying = accounts[:leavers], accounts[leavers:]
    for account in leaving:
        org.move(account, "prod", "sandbox")
    result = mesh.resync()

    if leavers == 2:
        assert not result["ok"]
        [refusal] = result["refused"]
        assert "16 of the 24 rules our shared Profiles give VPCs of other accounts" in refusal
        assert result["changes"]
        assert {c["status"] for c in result["changes"]} == {"planned"}
        assert all(on_profile(a) == {v: [profile_id] for v in vpcs[a]} for a in accounts)
        [share] = shares(aws).values()
        assert share["PRINCIPAL"] >= set(accounts)
        return
    assert result["ok"], result["errors"]
    assert sorted(
        (c["kind"], c.get("account"), c.get("vpc_id"), c["status"]) for c in result["changes"]
    ) == sorted(
        [("disassociate_profile", leaving[0], vpc, "applied") for vpc in vpcs[leaving[0]]]
        + [("unshare", None, None, "applied")]
    )
    assert on_profile(leaving[0]) == {v: [] for v in vpcs[leaving[0]]}
    assert all(on_profile(a) == {v: [profile_id] for v in vpcs[a]} for a in staying)
    assert snapshot(mesh, aws) == home_before
