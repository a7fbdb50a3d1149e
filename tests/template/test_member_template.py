"""Checks of member.yaml (the role in member accounts) and of the home role's side of it, offline.

- cfn-lint (informational checks included) and checkov find nothing in member.yaml; every checkov
  skip has a reason; it is plain CloudFormation with no account, Region or partition written in
  (it must run as a service-managed StackSet);
- the parameters: MeshId as in template.yaml, ReconcilerRoleArn pattern-checked, ExternalId
  NoEcho and optional;
- the role is named resolver-mesh-member-<MeshId>, exactly what the home role may assume, and
  nothing else may be assumed from home;
- the trust policy names only the home reconciler's role, with the external id when one is given;
- every Route 53 Resolver and RAM write is conditioned on the owner tag, but for associating the
  rules shared with the account and accepting invitations, and an explicit Deny keeps the
  account's own untagged rules out of reach;
- the role grants what the reconciler calls in a member account, with "*" only where the action
  has no resource type.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cfnlint.api  # type: ignore[import-untyped]
import cfnlint.decode  # type: ignore[import-untyped]
import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMBER = ROOT / "member.yaml"
HOME = ROOT / "template.yaml"
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"  # installed by `make test`

MESH = {"Ref": "MeshId"}
OWNER_RESOURCE_TAG = "aws:ResourceTag/resolver-mesh:owner"
OWNER_REQUEST_TAG = "aws:RequestTag/resolver-mesh:owner"
MEMBER_ROLE_NAME = "resolver-mesh-member-${MeshId}"
MEMBER_ROLE_PATTERN = "arn:${AWS::Partition}:iam::*:role/" + MEMBER_ROLE_NAME
OWN_RULES = "arn:${AWS::Partition}:route53resolver:*:${AWS::AccountId}:resolver-rule/*"
ANY_ACCOUNTS_RULES = "arn:${AWS::Partition}:route53resolver:*:*:resolver-rule/*"
OWN_SHARES = "arn:${AWS::Partition}:ram:*:${AWS::AccountId}:resource-share/*"

# What the reconciler calls in a member account (a hub, a spoke or a shared VPC there).
MEMBER_REQUIRED_ACTIONS = {
    "route53resolver:ListResolverRules",
    "route53resolver:ListResolverRuleAssociations",
    "route53resolver:ListResolverEndpoints",
    "route53resolver:ListResolverEndpointIpAddresses",
    "route53resolver:GetResolverEndpoint",
    "route53resolver:GetResolverRule",
    "route53resolver:ListTagsForResource",
    "route53resolver:CreateResolverRule",
    "route53resolver:UpdateResolverRule",
    "route53resolver:DeleteResolverRule",
    "route53resolver:AssociateResolverRule",
    "route53resolver:DisassociateResolverRule",
    "route53resolver:TagResource",
    "route53resolver:PutResolverRulePolicy",
    "route53resolver:GetResolverRulePolicy",
    "ec2:DescribeRegions",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcEndpointServices",
    "ec2:DescribeVpcs",
    *(f"ram:{a}" for a in ("CreateResourceShare", "AssociateResourceShare", "TagResource")),
    *(f"ram:{a}" for a in ("DisassociateResourceShare", "DeleteResourceShare")),
    *(f"ram:{a}" for a in ("GetResourceShares", "GetResourceShareAssociations")),
    *(f"ram:{a}" for a in ("GetResourceShareInvitations", "AcceptResourceShareInvitation")),
}
# The home role shares and receives rules too (a hub at home, spokes elsewhere, and back).
HOME_REQUIRED_ACTIONS = {
    a for a in MEMBER_REQUIRED_ACTIONS if a.startswith("ram:") or "RulePolicy" in a
} | {"sts:AssumeRole"}

# Actions without a resource type (Service Authorization Reference): the only ones on "*".
STAR_READS = re.compile(
    r"^(route53resolver:List\w+|ec2:Describe\w+|ram:GetResourceShare\w*"
    r"|organizations:List(Accounts|AccountsForParent|OrganizationalUnitsForParent|Roots)"
    r"|route53profiles:List(Profiles|ProfileAssociations|ProfileResourceAssociations))$"
)
# Writes without a resource type: on "*" only when the request carries our owner tag.
STAR_WRITES_IF_TAGGED = {"ram:CreateResourceShare"}
# Writes allowed without our owner tag, and why (see the templates' comments):
UNTAGGED_WRITES = {
    # rules shared WITH the account carry their owner's tags only in the owner's account
    "route53resolver:AssociateResolverRule",
    "route53resolver:DisassociateResolverRule",
    # an invitation is in the sharing account and exists only for a share sent to this one
    "ram:AcceptResourceShareInvitation",
}
# ...and, at home only, as before: rules are created and tagged (adopted) without a condition.
HOME_UNTAGGED_WRITES = UNTAGGED_WRITES | {
    "route53resolver:CreateResolverRule",
    "route53resolver:TagResource",
}
# Every rule write that the Deny must keep off the account's own rules of other owners.
RULE_CHANGES = {
    "route53resolver:AssociateResolverRule",
    "route53resolver:DeleteResolverRule",
    "route53resolver:DisassociateResolverRule",
    "route53resolver:PutResolverRulePolicy",
    "route53resolver:UpdateResolverRule",
}
READ_VERBS = ("Get", "List", "Describe")


# --------------------------------------------------------------------------------------------
# helpers


def _load(path: Path) -> dict[str, Any]:
    decoded, matches = cfnlint.decode.decode(path)
    assert not matches, [str(m) for m in matches]
    plain = json.loads(json.dumps(decoded))
    assert isinstance(plain, dict)
    return plain


@pytest.fixture(scope="module")
def member() -> dict[str, Any]:
    return _load(MEMBER)


@pytest.fixture(scope="module")
def home() -> dict[str, Any]:
    return _load(HOME)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role(template: dict[str, Any], name: str) -> dict[str, Any]:
    role = template["Resources"][name]
    assert role["Type"] == "AWS::IAM::Role"
    props = role["Properties"]
    assert isinstance(props, dict)
    return props


def _statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role.get("Policies", []):
        # A conditional policy (Fn::If [condition, policy, AWS::NoValue]): its policy.
        for chosen in policy.get("Fn::If", [None, policy])[1:]:
            if "PolicyDocument" in chosen:
                yield from _as_list(chosen["PolicyDocument"]["Statement"])


def _sub(value: Any) -> str:
    """The template string of a resource written as !Sub, else the value itself."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return str(value["Fn::Sub"])
    return str(value) if isinstance(value, str) else json.dumps(value)


def _is_write(action: str) -> bool:
    service, _, name = action.partition(":")
    return service in {"route53resolver", "ram"} and not name.startswith(READ_VERBS)


def _owner_condition(statement: dict[str, Any]) -> str | None:
    """Which owner-tag key a statement requires to be our MeshId (StringEquals), if any."""
    equals = statement.get("Condition", {}).get("StringEquals", {})
    for key in (OWNER_RESOURCE_TAG, OWNER_REQUEST_TAG):
        if equals.get(key) == MESH:
            return key
    return None


def _granted(role: dict[str, Any]) -> set[str]:
    return {
        action
        for st in _statements(role)
        if st["Effect"] == "Allow"
        for action in _as_list(st["Action"])
    }


ROLES = [("member.yaml", "MemberRole"), ("template.yaml", "ReconcilerRole")]


def _template_role(request: pytest.FixtureRequest, file: str, name: str) -> dict[str, Any]:
    template = request.getfixturevalue("member" if file == "member.yaml" else "home")
    assert isinstance(template, dict)
    return _role(template, name)


# --------------------------------------------------------------------------------------------
# lint and scan


def test_cfn_lint_is_clean() -> None:
    config = cfnlint.api.ManualArgs(include_checks=["I"], regions=["us-east-1"])
    matches = cfnlint.api.lint_file(MEMBER, config=config)
    assert matches == [], "\n".join(str(m) for m in matches)


def test_checkov_is_clean_and_every_skip_is_justified(member: dict[str, Any]) -> None:
    command = [str(CHECKOV), "-f", str(MEMBER), "--framework", "cloudformation"]
    command += ["--skip-download", "--quiet", "--output", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout) if result.stdout.startswith("{") else None
    assert report, result.stdout + result.stderr
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert report["summary"]["failed"] == 0, failed
    assert report["summary"]["passed"] > 0
    for name, resource in member["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(str(skip.get("comment", ""))) > 40, f"{name}: skip {skip} needs a reason"


def test_plain_cloudformation_fit_for_a_stackset(member: dict[str, Any]) -> None:
    assert "Transform" not in member
    assert set(member["Resources"]) == {"MemberRole"}
    text = MEMBER.read_text(encoding="utf-8")
    # No account, Region or partition written in: pseudo parameters and parameters only.
    assert not re.search(r"\b\d{12}\b", text)
    assert not re.search(r"\b[a-z]{2}(-[a-z]+)+-\d\b", text)
    assert "arn:aws:" not in text
    assert "Fn::ImportValue" not in json.dumps(member)
    assert member["Outputs"]["MemberRoleArn"]["Value"] == {"Fn::GetAtt": ["MemberRole", "Arn"]}


# --------------------------------------------------------------------------------------------
# parameters


def test_mesh_id_is_the_home_templates(member: dict[str, Any], home: dict[str, Any]) -> None:
    ours, theirs = member["Parameters"]["MeshId"], home["Parameters"]["MeshId"]
    for key in ("Type", "Default", "AllowedPattern"):
        assert ours[key] == theirs[key], key


def test_reconciler_role_arn_is_pattern_checked(member: dict[str, Any]) -> None:
    param = member["Parameters"]["ReconcilerRoleArn"]
    assert "Default" not in param  # required
    pattern = re.compile(param["AllowedPattern"])
    for good in (
        "arn:aws:iam::123456789012:role/resolver-mesh-ReconcilerRole-AbC123",
        "arn:aws-us-gov:iam::123456789012:role/path/to/role",
        "arn:aws-cn:iam::123456789012:role/r",
    ):
        assert pattern.match(good), good
    for bad in (
        "",
        "arn:aws:iam::12345:role/r",
        "arn:aws:iam::123456789012:user/r",
        "arn:aws:sts::123456789012:assumed-role/r/s",
        "*",
        "arn:aws:iam::123456789012:role/*",
    ):
        assert not pattern.match(bad), bad


def test_external_id_is_secret_and_optional(member: dict[str, Any]) -> None:
    param = member["Parameters"]["ExternalId"]
    assert param["NoEcho"] is True
    assert param["Default"] == ""
    pattern = re.compile(param["AllowedPattern"])
    assert pattern.match("")
    assert pattern.match("b7c1f0e2-5d4a-4c1e-9a33-0f6e2d1c9b8a")
    assert not pattern.match("x")  # STS wants at least 2 characters
    assert not pattern.match("has space")
    assert member["Conditions"]["HasExternalId"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]
    }


# --------------------------------------------------------------------------------------------
# the role, its trust policy, and the home role's side


def test_role_name(member: dict[str, Any]) -> None:
    role = _role(member, "MemberRole")
    assert role["RoleName"] == {"Fn::Sub": MEMBER_ROLE_NAME}
    assert "Path" not in role  # the home role's pattern has no path
    assert "ManagedPolicyArns" not in role
    assert "PermissionsBoundary" not in role


def test_trust_policy_names_only_the_home_role_with_the_external_id(
    member: dict[str, Any],
) -> None:
    (trust,) = _role(member, "MemberRole")["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Effect"] == "Allow"
    assert trust["Principal"] == {"AWS": {"Ref": "ReconcilerRoleArn"}}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {
        "Fn::If": [
            "HasExternalId",
            {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_home_role_may_assume_only_the_member_role(
    home: dict[str, Any], member: dict[str, Any]
) -> None:
    sts = [
        (name, st)
        for name, res in home["Resources"].items()
        if res["Type"] == "AWS::IAM::Role"
        for st in _statements(res["Properties"])
        if any(a.startswith("sts:") for a in _as_list(st["Action"]))
    ]
    assert len(sts) == 1, sts
    name, st = sts[0]
    assert name == "ReconcilerRole"
    assert st["Effect"] == "Allow"
    assert _as_list(st["Action"]) == ["sts:AssumeRole"]
    assert _as_list(st["Resource"]) == [{"Fn::Sub": MEMBER_ROLE_PATTERN}]
    assert "Condition" not in st
    # The pattern ends in exactly the member role's name.
    member_name = _role(member, "MemberRole")["RoleName"]["Fn::Sub"]
    assert MEMBER_ROLE_PATTERN.endswith(":role/" + member_name)


def test_home_outputs_the_role_arn_member_yaml_needs(home: dict[str, Any]) -> None:
    output = home["Outputs"]["ReconcilerRoleArn"]
    assert output["Value"] == {"Fn::GetAtt": ["ReconcilerRole", "Arn"]}


# --------------------------------------------------------------------------------------------
# permissions, both roles


def test_member_grants_what_the_reconciler_calls(member: dict[str, Any]) -> None:
    granted = _granted(_role(member, "MemberRole"))
    assert granted >= MEMBER_REQUIRED_ACTIONS, sorted(MEMBER_REQUIRED_ACTIONS - granted)
    # Nothing the reconciler does not call in a member account.
    services = {"route53resolver", "route53profiles", "ram", "ec2"}
    assert not {a for a in granted if a.split(":")[0] not in services}
    # Regions are discovered at home; a member is asked only which it has not enabled
    assert "ec2:DescribeRegions" in granted


def test_home_grants_sharing_receiving_and_assuming(home: dict[str, Any]) -> None:
    granted = _granted(_role(home, "ReconcilerRole"))
    assert granted >= HOME_REQUIRED_ACTIONS, sorted(HOME_REQUIRED_ACTIONS - granted)


@pytest.mark.parametrize(("file", "name"), ROLES)
def test_no_wildcard_actions_and_star_only_without_resource_types(
    request: pytest.FixtureRequest, file: str, name: str
) -> None:
    for st in _statements(_template_role(request, file, name)):
        assert "NotAction" not in st
        assert "NotResource" not in st
        assert "NotPrincipal" not in st
        for action in _as_list(st["Action"]):
            assert "*" not in action, action
        if "*" not in _as_list(st["Resource"]):
            continue
        assert st["Effect"] == "Allow"
        for action in _as_list(st["Action"]):
            if action in STAR_WRITES_IF_TAGGED:
                assert _owner_condition(st) == OWNER_REQUEST_TAG, action
            else:
                assert STAR_READS.match(action), f"{action} on '*'"


@pytest.mark.parametrize(("file", "name"), ROLES)
def test_writes_are_tag_conditioned(request: pytest.FixtureRequest, file: str, name: str) -> None:
    role = _template_role(request, file, name)
    untagged = {
        action
        for st in _statements(role)
        if st["Effect"] == "Allow" and _owner_condition(st) is None
        for action in _as_list(st["Action"])
        if _is_write(action)
    }
    expected = UNTAGGED_WRITES if name == "MemberRole" else HOME_UNTAGGED_WRITES
    assert untagged == expected
    for st in _statements(role):
        actions = set(_as_list(st["Action"]))
        if st["Effect"] != "Allow" or not any(_is_write(a) for a in actions):
            continue
        key = _owner_condition(st)
        resources = {_sub(r) for r in _as_list(st["Resource"])}
        if key is None:
            # The exceptions stand alone, each on the one resource type it needs.
            assert actions <= UNTAGGED_WRITES | HOME_UNTAGGED_WRITES, actions
            if actions & {"route53resolver:AssociateResolverRule"}:
                assert resources == {ANY_ACCOUNTS_RULES} or resources == {OWN_RULES}
            if "ram:AcceptResourceShareInvitation" in actions:
                assert actions == {"ram:AcceptResourceShareInvitation"}
                assert resources == {"arn:${AWS::Partition}:ram:*:*:resource-share-invitation/*"}
            continue
        # Tag-conditioned writes stay in the account: its own rules and its own shares.
        assert resources <= {OWN_RULES, OWN_SHARES, "*"}, resources
        if key == OWNER_REQUEST_TAG:
            # Only creating and tagging: the new thing must carry our tag.
            assert actions <= {
                "route53resolver:CreateResolverRule",
                "route53resolver:TagResource",
                "ram:CreateResourceShare",
                "ram:TagResource",
            }, actions


@pytest.mark.parametrize(("file", "name"), ROLES)
def test_rules_and_shares_of_this_mesh_only(
    request: pytest.FixtureRequest, file: str, name: str
) -> None:
    role = _template_role(request, file, name)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for st in _statements(role):
        if st["Effect"] == "Allow":
            for action in _as_list(st["Action"]):
                by_action.setdefault(action, []).append(st)
    for action in (
        "route53resolver:UpdateResolverRule",
        "route53resolver:DeleteResolverRule",
        "route53resolver:PutResolverRulePolicy",
        "ram:AssociateResourceShare",
        "ram:DisassociateResourceShare",
        "ram:DeleteResourceShare",
    ):
        for st in by_action[action]:
            assert _owner_condition(st) == OWNER_RESOURCE_TAG, action
    for action in ("ram:CreateResourceShare", "ram:TagResource"):
        for st in by_action[action]:
            assert _owner_condition(st) == OWNER_REQUEST_TAG, action
    for action in ("ram:CreateResourceShare", "ram:AssociateResourceShare"):
        for st in by_action[action]:
            only_ours = st["Condition"]["StringEqualsIfExists"]["ram:RequestedResourceType"]
            # rules, and the hub's Route 53 Profile (DELIVERY=profile with shared VPCs)
            assert only_ours == ["route53resolver:ResolverRule", "route53profiles:Profile"], action
    # Tagging a share may not take one another mesh owns.
    (tag_share,) = by_action["ram:TagResource"]
    assert tag_share["Condition"]["StringEqualsIfExists"] == {OWNER_RESOURCE_TAG: MESH}


@pytest.mark.parametrize(("file", "name"), ROLES)
def test_an_explicit_deny_keeps_other_owners_rules_out_of_reach(
    request: pytest.FixtureRequest, file: str, name: str
) -> None:
    role = _template_role(request, file, name)
    denies = [st for st in _statements(role) if st["Effect"] == "Deny"]
    (deny,) = denies
    assert set(_as_list(deny["Action"])) == RULE_CHANGES
    assert [_sub(r) for r in _as_list(deny["Resource"])] == [OWN_RULES]
    assert deny["Condition"] == {"StringNotEquals": {OWNER_RESOURCE_TAG: MESH}}
    # Whatever reaches rules of any account is a rule change the Deny covers here.
    for st in _statements(role):
        if st["Effect"] == "Allow" and ANY_ACCOUNTS_RULES in map(_sub, _as_list(st["Resource"])):
            assert set(_as_list(st["Action"])) <= RULE_CHANGES


def test_member_inline_policies_fit_the_iam_quota(member: dict[str, Any]) -> None:
    """A role's inline policies may hold 10,240 characters in all (whitespace not counted)."""
    longest = {
        "${AWS::Partition}": "aws-us-gov",
        "${AWS::AccountId}": "123456789012",
        "${MeshId}": "m" * 32,
    }

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Fn::Sub"}:
                text = str(node["Fn::Sub"])
                for key, value in longest.items():
                    text = text.replace(key, value)
                return text
            if set(node) == {"Ref"}:
                return "m" * 32
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    role = _role(member, "MemberRole")
    size = sum(
        len(p["PolicyName"]) + len(json.dumps(resolve(p["PolicyDocument"]), separators=(",", ":")))
        for p in role["Policies"]
    )
    assert size < 10_240, size
