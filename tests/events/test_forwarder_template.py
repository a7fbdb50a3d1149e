"""forwarder.yaml: lint-clean, scanner-clean, and forwarding only what it should, only where.

The patterns themselves are exercised in test_patterns.py; here: the structure every rule
shares (CloudTrail detail-type, the failed-call and own-role filters, the central bus target
with the forwarding role) and the role's reach (events:PutEvents on the central bus only).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import cfnlint.api  # type: ignore[import-untyped]
from eventkit import CLOUDTRAIL, FORWARDER, ROOT, load, pattern_rules

from resolver_mesh.names import MESH_TAG_KEY

CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"  # installed by `make test`

# The reconciler's own calls: its home role, and the member role it assumes in this account.
MEMBER_ROLE = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/resolver-mesh-member-${MeshId}"
}
OWN_ROLE_FILTER = [
    {
        "userIdentity": {
            "sessionContext": {
                "sessionIssuer": {
                    "arn": [{"anything-but": [{"Ref": "ReconcilerRoleArn"}, MEMBER_ROLE]}]
                }
            }
        }
    },
    {"userIdentity": {"sessionContext": {"sessionIssuer": {"arn": [{"exists": False}]}}}},
]


def test_cfn_lint_is_clean() -> None:
    config = cfnlint.api.ManualArgs(include_checks=["I"], regions=["us-east-1"])
    matches = cfnlint.api.lint_file(FORWARDER, config=config)
    assert matches == [], "\n".join(str(m) for m in matches)


def test_checkov_is_clean() -> None:
    command = [str(CHECKOV), "-f", str(FORWARDER), "--framework", "cloudformation"]
    command += ["--skip-download", "--quiet", "--output", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout) if result.stdout.startswith("{") else None
    assert report, result.stdout + result.stderr
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert report["summary"]["failed"] == 0, failed
    assert report["summary"]["passed"] > 0


def test_parameters_are_the_home_stack_outputs() -> None:
    template = load(FORWARDER)
    assert set(template["Parameters"]) == {"MeshId", "CentralBusArn", "ReconcilerRoleArn"}
    assert "Transform" not in template  # plain CloudFormation: nothing to build or upload
    # The trail requirement is documented where the template is read.
    assert "CloudTrail trail" in template["Description"]


def test_every_rule_forwards_successful_calls_of_others_to_the_central_bus() -> None:
    rules = pattern_rules(FORWARDER)
    assert len(rules) == 6
    for name, props in rules.items():
        pattern = props["EventPattern"]
        assert pattern["detail-type"] == [CLOUDTRAIL], name
        assert len(pattern["source"]) == 1, name
        detail = pattern["detail"]
        assert detail["errorCode"] == [{"exists": False}], name
        assert detail["$or"] == OWN_ROLE_FILTER, name
        assert detail["eventName"], name
        assert props["State"] == "ENABLED"
        (target,) = props["Targets"]
        assert target["Arn"] == {"Ref": "CentralBusArn"}, name
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardRole", "Arn"]}, name


def test_each_event_name_is_watched_by_exactly_one_rule() -> None:
    names: list[str] = []
    for props in pattern_rules(FORWARDER).values():
        names += props["EventPattern"]["detail"]["eventName"]
    assert len(names) == len(set(names)) == 17 + 7  # Resolver and EC2, Route 53 Profiles


def test_tag_changes_are_forwarded_only_for_vpcs() -> None:
    detail = pattern_rules(FORWARDER)["VpcTagChanges"]["EventPattern"]["detail"]
    assert detail["eventName"] == ["CreateTags", "DeleteTags"]
    assert detail["requestParameters"] == {
        "resourcesSet": {"items": {"resourceId": [{"prefix": "vpc-"}]}},
        "$or": [
            {"tagSet": {"items": {"key": [MESH_TAG_KEY]}}},
            {"tagSet": {"items": {"key": [{"exists": False}]}}},
        ],
    }
    vpcs = pattern_rules(FORWARDER)["VpcChanges"]["EventPattern"]["detail"]
    assert vpcs["eventName"] == ["CreateVpc", "DeleteVpc"]


def test_fit_for_a_service_managed_stackset() -> None:
    """The same parameters in every account and Region: no parameter names an account or a
    Region that differs between the stack instances, no resource has a fixed physical name
    that two instances in one account would share (rules and role are per Region)."""
    template = load(FORWARDER)
    assert set(template["Parameters"]) == {"MeshId", "CentralBusArn", "ReconcilerRoleArn"}
    role = next(r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role")
    assert "RoleName" not in role["Properties"]  # IAM is global: a fixed name would collide


def _role(template: dict[str, Any]) -> dict[str, Any]:
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 1
    props = roles[0]["Properties"]
    assert isinstance(props, dict)
    return props


def test_forward_role_may_only_put_events_on_the_central_bus() -> None:
    role = _role(load(FORWARDER))
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "ManagedPolicyArns" not in role
    statements = [st for pol in role["Policies"] for st in pol["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Sid": "PutEventsOnCentralBusOnly",
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": {"Ref": "CentralBusArn"},
        }
    ]
