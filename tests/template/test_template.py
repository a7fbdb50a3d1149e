"""Checks of template.yaml, samconfig.toml and events/, all offline.

- cfn-lint (informational checks included) finds nothing;
- the paths the template names (handler file, layer folder, layer requirements) exist, and the
  handler module defines ``lambda_handler`` (read by AST: the module is never imported);
- the runtime is python3.12 or newer and the layer is built for the function's runtime;
- IAM grants no wildcard action, "*" resources only to read-only List/Describe actions, and every
  action the reconciler calls;
- the hubs table keeps point-in-time recovery and survives stack deletion;
- samtranslator transforms the template offline;
- event delivery: the central bus, its rule and the schedule queue on the FIFO reconcile queue
  (one message group, a dead-letter queue after 3 receives), the pipe from the hubs table's
  stream, the function's SQS event with partial batch responses, the alarms;
- every event in events/ parses, and the manual ones carry a valid ``action``.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cfnlint.api  # type: ignore[import-untyped]
import cfnlint.decode  # type: ignore[import-untyped]
import pytest

from resolver_mesh.config import ORGANIZATION_PARENT
from resolver_mesh.local.org import FUNCTION_PROCESS_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"

MANUAL_ACTIONS = {"plan", "resync"}
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")

# What the code calls (issue 2); each must be granted by the function's role.
REQUIRED_ACTIONS = {
    "route53resolver:ListResolverRules",
    "route53resolver:ListResolverRuleAssociations",
    "route53resolver:ListResolverEndpoints",
    "route53resolver:ListResolverEndpointIpAddresses",
    "route53resolver:GetResolverRule",
    "route53resolver:CreateResolverRule",
    "route53resolver:UpdateResolverRule",
    "route53resolver:DeleteResolverRule",
    "route53resolver:AssociateResolverRule",
    "route53resolver:DisassociateResolverRule",
    "route53resolver:TagResource",
    "route53resolver:ListTagsForResource",
    "ec2:DescribeRegions",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcEndpointServices",
    "ec2:DescribeVpcs",
    "dynamodb:Scan",
    "dynamodb:GetItem",
    "dynamodb:Query",
    # fan-out: apply orders, the pass after a wave, leases and waves
    "sqs:SendMessage",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:UpdateItem",
}

# Actions without resource-level permissions: the only ones allowed on Resource "*".
STAR_RESOURCE_OK = re.compile(
    r"^(route53resolver:List\w+|ec2:Describe\w+|dynamodb:ListStreams|ram:GetResourceShare\w*"
    r"|organizations:List(Accounts|AccountsForParent|OrganizationalUnitsForParent|Roots)"
    r"|route53profiles:List(Profiles|ProfileAssociations|ProfileResourceAssociations))$"
)
# Writes without a resource type: on "*" only with the owner tag required on the request.
STAR_RESOURCE_IF_TAGGED = {"ram:CreateResourceShare"}
OWNER_REQUEST_TAG = {"aws:RequestTag/resolver-mesh:owner": {"Ref": "MeshId"}}


# --------------------------------------------------------------------------------------------
# helpers


def _plain(node: Any) -> Any:
    """cfn-lint's decoded nodes as plain dicts/lists/strings (they subclass them)."""
    return json.loads(json.dumps(node))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = cfnlint.decode.decode(TEMPLATE)
    assert not matches, [str(m) for m in matches]
    plain = _plain(decoded)
    assert isinstance(plain, dict)
    return plain


def _resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _resources_of_type(template, "AWS::Serverless::Function")


def _function_prop(template: dict[str, Any], fn: dict[str, Any], name: str) -> Any:
    """A function property, falling back to Globals.Function."""
    props = fn.get("Properties", {})
    if name in props:
        return props[name]
    return template.get("Globals", {}).get("Function", {}).get(name)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM policy statement: inline role policies, managed policies, SAM Policies."""
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        docs: list[Any] = []
        if res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                # A conditional policy (Fn::If [condition, policy, AWS::NoValue]): its policy.
                chosen = policy.get("Fn::If", [None, policy])[1:]
                docs += [p["PolicyDocument"] for p in chosen if "PolicyDocument" in p]
        elif res["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            docs.append(props["PolicyDocument"])
        elif res["Type"] == "AWS::Serverless::Function":
            # SAM Policies: a managed-policy name, a SAM policy template, or a document.
            for pol in _as_list(props.get("Policies", [])):
                if isinstance(pol, dict) and "Statement" in pol:
                    docs.append(pol)
        for doc in docs:
            for st in _as_list(doc["Statement"]):
                yield name, st


def _runtime_version(runtime: str) -> tuple[int, int]:
    m = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    assert m, f"not a Python runtime: {runtime}"
    return int(m.group(1)), int(m.group(2))


def _defines(tree: ast.Module, name: str) -> bool:
    """True if the module binds ``name`` at top level (def, assignment or import)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return True
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            return True
        if isinstance(node, ast.ImportFrom) and any(
            (a.asname or a.name) == name for a in node.names
        ):
            return True
    return False


# --------------------------------------------------------------------------------------------
# lint and transform


def test_cfn_lint_is_clean() -> None:
    config = cfnlint.api.ManualArgs(include_checks=["I"], regions=["us-east-1"])
    matches = cfnlint.api.lint_file(TEMPLATE, config=config)
    assert matches == [], "\n".join(str(m) for m in matches)


def test_samtranslator_transforms_offline(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from samtranslator.translator.transform import (  # type: ignore[import-untyped]
        transform,
    )

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sam = copy.deepcopy(template)
    # The translator wants code in S3 (sam deploy uploads it); local paths stay a build concern.
    for name, res in sam["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = f"s3://example-bucket/{name}.zip"
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://example-bucket/{name}.zip"

    class _NoManagedPolicies:
        """No network: the template names no managed policy by name."""

        def load(self) -> dict[str, str]:
            return {}

    out: dict[str, Any] = transform(sam, {}, _NoManagedPolicies())
    resources = out["Resources"]
    types = {r["Type"] for r in resources.values()}
    assert "AWS::Serverless::Function" not in types
    assert {"AWS::Lambda::Function", "AWS::Lambda::LayerVersion", "AWS::Events::Rule"} <= types

    rules = _resources_of_type(out, "AWS::Events::Rule")
    # The schedule is the template's own rule now (it targets the queue, not the function).
    assert set(rules) == {"ResyncSchedule", "CentralBusRule"}
    assert rules["ResyncSchedule"]["Properties"]["ScheduleExpression"] == {"Ref": "ResyncRate"}

    (fn,) = _resources_of_type(out, "AWS::Lambda::Function").values()
    # SAM renames a layer version with a content hash (CoreLayer<hash>).
    (layer_ref,) = fn["Properties"]["Layers"]
    assert layer_ref["Ref"].startswith("CoreLayer")
    assert resources[layer_ref["Ref"]]["Type"] == "AWS::Lambda::LayerVersion"
    # The function uses our role, so SAM generated none (and attached no managed policy).
    # (HubsTablePipeRole is the template's own, for the pipe.)
    roles = _resources_of_type(out, "AWS::IAM::Role").keys()
    assert not roles - {"ReconcilerRole", "HubsTablePipeRole"}
    # Nothing invokes the function directly but people: the queue feeds it.
    perms = _resources_of_type(out, "AWS::Lambda::Permission")
    assert not any(p["Properties"]["Principal"] == "events.amazonaws.com" for p in perms.values())
    mappings = {
        m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m["Properties"]
        for m in _resources_of_type(out, "AWS::Lambda::EventSourceMapping").values()
    }
    assert set(mappings) == {"ReconcileQueue", "ApplyQueue"}
    for mapping in mappings.values():
        assert mapping["BatchSize"] == 10
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "ScalingConfig" not in mappings["ReconcileQueue"]  # one group: one at a time anyway
    assert mappings["ApplyQueue"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "ApplyConcurrency"}
    }


# --------------------------------------------------------------------------------------------
# paths the template names


def test_handler_file_exists_and_defines_handler(template: dict[str, Any]) -> None:
    functions = _functions(template)
    assert functions
    for name, fn in functions.items():
        code_dir = ROOT / fn["Properties"]["CodeUri"]
        assert code_dir.is_dir(), f"{name}: CodeUri {code_dir} is not a folder"
        module, _, attr = fn["Properties"]["Handler"].rpartition(".")
        handler_file = code_dir / (module.replace(".", "/") + ".py")
        assert handler_file.is_file(), f"{name}: handler file {handler_file} missing"
        tree = ast.parse(handler_file.read_text(encoding="utf-8"), filename=str(handler_file))
        assert _defines(tree, attr), f"{handler_file} does not define {attr}"


def test_layer_folder_and_requirements_exist(template: dict[str, Any]) -> None:
    layers = _resources_of_type(template, "AWS::Serverless::LayerVersion")
    assert layers
    for name, layer in layers.items():
        content = ROOT / layer["Properties"]["ContentUri"]
        assert content.is_dir(), f"{name}: ContentUri {content} is not a folder"
        # The package sits at the root of ContentUri; layers/core/Makefile copies it.
        assert (content / "resolver_mesh").is_dir()
        requirements = content / "requirements.txt"
        assert requirements.is_file()
        for line in requirements.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert re.match(r"^[A-Za-z0-9_.\-\[\]]+\s*(==|>=|~=|<)", line), (
                    f"unpinned or odd requirement: {line!r}"
                )


def test_the_layer_ships_the_tested_boto3_and_botocore() -> None:
    """The function must not depend on the runtime's botocore (its Regions, its API fields):
    the layer pins the versions the tests run with."""

    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, version = line.split("#", 1)[0].strip().partition("==")
            if version:
                found[name.lower()] = version
        return found

    layer, dev = pins(ROOT / "layers/core/requirements.txt"), pins(ROOT / "requirements-dev.txt")
    for package in ("boto3", "botocore"):
        assert layer.get(package) == dev[package], package


def test_runtime_is_python312_or_newer(template: dict[str, Any]) -> None:
    layers = _resources_of_type(template, "AWS::Serverless::LayerVersion")
    for name, fn in _functions(template).items():
        runtime = _function_prop(template, fn, "Runtime")
        assert _runtime_version(runtime) >= (3, 12), f"{name}: {runtime}"
        archs = _function_prop(template, fn, "Architectures") or ["x86_64"]
        for layer_ref in fn["Properties"].get("Layers", []):
            layer = layers[layer_ref["Ref"]]
            # Compiled wheels (pydantic-core) are built for one runtime and one architecture:
            # the layer's Makefile must ask pip for exactly the function's.
            assert layer["Metadata"]["BuildMethod"] == "makefile"
            assert runtime in layer["Properties"]["CompatibleRuntimes"]
            assert layer["Metadata"].get("BuildArchitecture", "x86_64") in archs
            makefile = (ROOT / layer["Properties"]["ContentUri"] / "Makefile").read_text()
            version = ".".join(str(n) for n in _runtime_version(runtime))
            assert f"build-{layer_ref['Ref']}:" in makefile
            assert f"--python-version {version}" in makefile
            platform = "aarch64" if archs == ["arm64"] else "x86_64"
            assert f"manylinux2014_{platform}" in makefile
            # bytecode compiled at build time, valid whatever timestamps the zip carries
            assert "compileall" in makefile
            assert "--invalidation-mode unchecked-hash" in makefile
            assert set(archs) <= set(layer["Properties"].get("CompatibleArchitectures", archs))


# --------------------------------------------------------------------------------------------
# function configuration


def test_function_settings(template: dict[str, Any]) -> None:
    (fn,) = _functions(template).values()
    props = fn["Properties"]
    assert props["Handler"] == "app.lambda_handler"
    assert props["Timeout"] == 300
    assert props["MemorySize"] == {"Ref": "FunctionMemory"}
    memory = template["Parameters"]["FunctionMemory"]
    assert (memory["Default"], memory["MinValue"], memory["MaxValue"]) == (1024, 256, 10240)
    env = props["Environment"]["Variables"]
    assert env["HUBS_TABLE_NAME"] == {"Ref": "HubsTable"}
    assert env["MESH_ID"] == {"Ref": "MeshId"}
    assert env["MESH_REGIONS"] == {"Ref": "MeshRegions"}
    assert env["EXCLUDED_REGIONS"] == {"Ref": "ExcludedRegions"}
    assert env["CALLS_PER_SECOND"] == {"Ref": "CallsPerSecond"}
    assert env["MAX_CHANGE_FRACTION"] == {"Ref": "MaxChangeFraction"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "resolver-mesh"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ResolverMesh"
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    # the process settings the memory tests and benchmarks run their cold processes with
    for name, value in FUNCTION_PROCESS_ENVIRONMENT.items():
        assert env[name] == value

    assert env["RECONCILE_QUEUE_URL"] == {"Ref": "ReconcileQueue"}
    assert env["APPLY_QUEUE_URL"] == {"Ref": "ApplyQueue"}
    assert env["WORK_TABLE_NAME"] == {"Ref": "WorkTable"}

    # The schedule moved to the ResyncSchedule rule, which queues like every other trigger;
    # the apply queue carries fanned-out orders.
    assert [e["Type"] for e in props["Events"].values()] == ["SQS", "SQS"]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "r-ab12",
        "ou-ab12-cdef3456",
        "ou-ab12-cdef3456,ou-ab12-99998888",
        "r-ab12,ou-ab12-cdef3456",
        "ou-ab12-cdef3456,",
        ",r-ab12",
        "ou-ab12-cdef3456, r-ab12",
        "123456789012",
        "o-ab12cdef34",
        "OU-AB12-CDEF3456",
        "ou-ab12",
    ],
)
def test_member_ous_parameter_takes_what_the_setting_takes(
    template: dict[str, Any], value: str
) -> None:
    """The parameter's pattern and MEMBER_OUS agree: a value CloudFormation accepts is never a
    ConfigError at run time, and one it refuses would be."""
    pattern = re.compile(template["Parameters"]["MemberOrganizationalUnits"]["AllowedPattern"])
    parts = value.split(",")
    setting_takes = value == "" or all(ORGANIZATION_PARENT.match(p) for p in parts)
    assert bool(pattern.match(value)) is setting_takes


def test_member_ous_reach_the_function_and_only_then_organizations(
    template: dict[str, Any],
) -> None:
    (fn,) = _functions(template).values()
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["MEMBER_OUS"] == {"Ref": "MemberOrganizationalUnits"}
    assert env["MEMBER_EXTERNAL_ID"] == {"Ref": "MemberExternalId"}
    policies = template["Resources"]["ReconcilerRole"]["Properties"]["Policies"]
    conditional = [p["Fn::If"] for p in policies if "Fn::If" in p]
    [(condition, policy, otherwise)] = conditional
    assert condition == "HasMemberOrganizationalUnits"
    assert otherwise == {"Ref": "AWS::NoValue"}
    [statement] = policy["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == [
        "organizations:ListAccounts",
        "organizations:ListAccountsForParent",
        "organizations:ListOrganizationalUnitsForParent",
        "organizations:ListRoots",
    ]
    unconditional = [p for p in policies if "Fn::If" not in p]
    assert not any("organizations:" in json.dumps(p["PolicyDocument"]) for p in unconditional), (
        "Organizations permissions only with MemberOrganizationalUnits"
    )


def test_log_group_has_retention_and_the_function_name(template: dict[str, Any]) -> None:
    (fn,) = _functions(template).values()
    props = fn["Properties"]
    group_ref = props["LoggingConfig"]["LogGroup"]["Ref"]
    group = template["Resources"][group_ref]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] > 0
    assert group["Properties"]["LogGroupName"] == {
        "Fn::Sub": "/aws/lambda/" + props["FunctionName"]["Fn::Sub"]
    }


def test_parameters(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["MeshId"]["Default"] == "resolver-mesh"
    pattern = re.compile(params["MeshId"]["AllowedPattern"])
    assert pattern.match("resolver-mesh")
    assert pattern.match("mesh_a")
    for bad in ("a.b", "x" * 33, "", "a/b", "a b"):
        assert not pattern.match(bad), bad
    assert params["ResyncRate"]["Default"] == "rate(15 minutes)"
    assert params["MeshRegions"]["Default"] == ""
    assert params["ExcludedRegions"]["Default"] == ""
    assert str(params["CallsPerSecond"]["Default"]) == "5"
    assert params["MaxChangeFraction"]["Default"] == "0.5"
    fraction = re.compile(params["MaxChangeFraction"]["AllowedPattern"])
    for ok in ("0", "0.5", "0.25", "1", "1.0"):
        assert fraction.match(ok), ok
    for bad in ("1.5", "-0.1", "", "abc", "2"):
        assert not fraction.match(bad), bad
    assert params["LogLevel"]["Default"] == "INFO"


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for key in (
        "MeshId",
        "HubsTableName",
        "HubsTableArn",
        "ReconcilerFunctionName",
        "ReconcilerFunctionArn",
        "CoreLayerArn",
        # what scripts/deploy-forwarders.sh passes to every Region's forwarder, and operators
        "CentralBusArn",
        "ReconcilerRoleArn",
        "ReconcileQueueUrl",
        "DeadLetterQueueUrl",
    ):
        assert key in outputs, key
    assert outputs["CentralBusArn"]["Value"] == {"Fn::GetAtt": ["CentralBus", "Arn"]}
    assert outputs["ReconcilerRoleArn"]["Value"] == {"Fn::GetAtt": ["ReconcilerRole", "Arn"]}


# --------------------------------------------------------------------------------------------
# IAM


def test_iam_has_no_wildcard_actions(template: dict[str, Any]) -> None:
    statements = list(_statements(template))
    assert statements
    for owner, st in statements:
        assert "NotAction" not in st, f"{owner}: NotAction grants almost everything"
        for action in _as_list(st["Action"]):
            assert "*" not in action, f"{owner}: wildcard in {action}"


def test_iam_star_resources_only_for_actions_without_resource_level_permissions(
    template: dict[str, Any],
) -> None:
    for owner, st in _statements(template):
        if st.get("Effect") != "Allow" or "*" not in _as_list(st.get("Resource", [])):
            continue
        for action in _as_list(st["Action"]):
            if action in STAR_RESOURCE_IF_TAGGED:
                condition = st.get("Condition", {}).get("StringEquals", {})
                assert condition.items() >= OWNER_REQUEST_TAG.items(), f"{owner}: {action}"
                continue
            assert STAR_RESOURCE_OK.match(action), f"{owner}: {action} on Resource '*'"


def test_iam_grants_every_action_the_code_calls(template: dict[str, Any]) -> None:
    granted = {
        action
        for _, st in _statements(template)
        if st.get("Effect") == "Allow"
        for action in _as_list(st["Action"])
    }
    assert granted >= REQUIRED_ACTIONS, sorted(REQUIRED_ACTIONS - granted)


def test_iam_dynamodb_is_read_only_on_the_hubs_table(template: dict[str, Any]) -> None:
    seen = set()
    for owner, st in _statements(template):
        actions = [a for a in _as_list(st["Action"]) if a.startswith("dynamodb:")]
        if not actions:
            continue
        seen.add(owner)
        if owner == "HubsTablePipeRole":
            # The pipe reads the table's stream, never the table.
            if actions == ["dynamodb:ListStreams"]:
                assert st["Resource"] == "*"
                continue
            assert set(actions) <= {
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
            }, owner
            assert _as_list(st["Resource"]) == [{"Fn::GetAtt": ["HubsTable", "StreamArn"]}]
            continue
        if _as_list(st["Resource"]) == [{"Fn::GetAtt": ["WorkTable", "Arn"]}]:
            # leases and waves (conditional writes), departed locations (kept, scanned)
            assert set(actions) == {
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "dynamodb:UpdateItem",
                "dynamodb:Scan",
            }, owner
            continue
        assert set(actions) <= {"dynamodb:Scan", "dynamodb:GetItem", "dynamodb:Query"}, owner
        assert _as_list(st["Resource"]) == [{"Fn::GetAtt": ["HubsTable", "Arn"]}], owner
    assert seen == {"ReconcilerRole", "HubsTablePipeRole"}


def test_iam_role_is_the_functions_and_assumable_by_lambda_only(template: dict[str, Any]) -> None:
    (fn,) = _functions(template).values()
    role_name = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_name]
    assert "ManagedPolicyArns" not in role["Properties"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"


# --------------------------------------------------------------------------------------------
# the hubs table


def test_hubs_table_is_kept_and_recoverable(template: dict[str, Any]) -> None:
    table = template["Resources"]["HubsTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "region", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "region", "AttributeType": "S"}]
    assert props["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


# --------------------------------------------------------------------------------------------
# event delivery: central bus, schedule and pipe -> FIFO queue -> function


def _props(template: dict[str, Any], name: str) -> dict[str, Any]:
    props = template["Resources"][name]["Properties"]
    assert isinstance(props, dict)
    return props


def test_reconcile_queue_is_fifo_with_a_dead_letter_queue(template: dict[str, Any]) -> None:
    queue = _props(template, "ReconcileQueue")
    assert queue["QueueName"] == {"Fn::Sub": "${MeshId}-reconcile.fifo"}
    assert queue["FifoQueue"] is True
    # EventBridge and Pipes send no deduplication id.
    assert queue["ContentBasedDeduplication"] is True
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 3,
    }
    dlq = _props(template, "ReconcileDeadLetterQueue")
    assert dlq["FifoQueue"] is True  # a FIFO queue's dead-letter queue must be FIFO
    assert dlq["QueueName"]["Fn::Sub"].endswith(".fifo")
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"


@pytest.mark.parametrize("name", ["ReconcileQueue", "ApplyQueue"])
def test_visibility_timeout_is_at_least_six_function_timeouts(
    template: dict[str, Any], name: str
) -> None:
    (fn,) = _functions(template).values()
    queue = _props(template, name)
    assert queue["VisibilityTimeout"] >= 6 * fn["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] <= 12 * 3600


def test_apply_queue_is_fifo_per_location_with_a_dead_letter_queue(
    template: dict[str, Any],
) -> None:
    queue = _props(template, "ApplyQueue")
    assert queue["QueueName"] == {"Fn::Sub": "${MeshId}-apply.fifo"}
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False  # the sender names each order
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ApplyDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 3,
    }
    dlq = _props(template, "ApplyDeadLetterQueue")
    assert dlq["FifoQueue"] is True
    alarm = _props(template, "ApplyDeadLetterAlarm")
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ApplyDeadLetterQueue", "QueueName"]}
    event = _functions(template)["ReconcilerFunction"]["Properties"]["Events"]["ApplyQueue"]
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["ApplyQueue", "Arn"]}
    granted = {
        action
        for owner, st in _statements(template)
        if owner == "ReconcilerRole" and props_arn(st) == "ApplyQueue"
        for action in _as_list(st["Action"])
    }
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage"} <= granted


def props_arn(statement: dict[str, Any]) -> str | None:
    """The one resource of this template a statement names first by its ARN, if any."""
    for resource in _as_list(statement.get("Resource", [])):
        if isinstance(resource, dict) and "Fn::GetAtt" in resource:
            return str(resource["Fn::GetAtt"][0])
    return None


def test_work_table_expires_its_items(template: dict[str, Any]) -> None:
    table = template["Resources"]["WorkTable"]
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_function_consumes_the_queue_with_partial_batch_responses(
    template: dict[str, Any],
) -> None:
    (fn,) = _functions(template).values()
    event = fn["Properties"]["Events"]["ReconcileQueue"]
    assert event["Type"] == "SQS"
    props = event["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["ReconcileQueue", "Arn"]}
    assert props["BatchSize"] == 10
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # A batching window is not supported for FIFO queues.
    assert "MaximumBatchingWindowInSeconds" not in props
    # The function has its own role, so SAM adds no SQS permissions: the role must have them.
    granted = {
        action
        for owner, st in _statements(template)
        if owner == "ReconcilerRole" and st["Resource"] == props["Queue"]
        for action in _as_list(st["Action"])
    }
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= granted


def test_every_trigger_queues_in_the_one_message_group(template: dict[str, Any]) -> None:
    queue_arn = {"Fn::GetAtt": ["ReconcileQueue", "Arn"]}
    rules = _resources_of_type(template, "AWS::Events::Rule")
    assert set(rules) == {"CentralBusRule", "ResyncSchedule"}
    for name, rule in rules.items():
        (target,) = rule["Properties"]["Targets"]
        assert target["Arn"] == queue_arn, name
        assert target["SqsParameters"] == {"MessageGroupId": "reconcile"}, name
    pipe = _props(template, "HubsTablePipe")
    assert pipe["Target"] == queue_arn
    assert pipe["TargetParameters"] == {"SqsQueueParameters": {"MessageGroupId": "reconcile"}}


def test_schedule_is_a_rule_with_the_resync_rate(template: dict[str, Any]) -> None:
    schedule = _props(template, "ResyncSchedule")
    assert schedule["ScheduleExpression"] == {"Ref": "ResyncRate"}
    assert schedule["State"] == "ENABLED"
    assert "EventBusName" not in schedule  # schedules only run on the default bus


def test_central_bus_and_its_rule(template: dict[str, Any]) -> None:
    bus = _props(template, "CentralBus")
    assert bus["Name"] == {"Fn::Sub": "${MeshId}-events"}
    statement, organization = bus["Policy"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    }
    # The organisation's accounts, by aws:PrincipalOrgID, only when OrganizationId is set.
    condition, by_org, nothing = organization["Fn::If"]
    assert condition == "HasOrganization"
    assert nothing == {"Ref": "AWS::NoValue"}
    assert by_org["Action"] == "events:PutEvents"
    assert by_org["Resource"] == statement["Resource"]
    assert by_org["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}
    }
    assert template["Conditions"]["HasOrganization"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]
    }
    org_id = re.compile(template["Parameters"]["OrganizationId"]["AllowedPattern"])
    assert org_id.match("o-a1b2c3d4e5")
    assert org_id.match("")
    assert not org_id.match("r-a1b2")
    assert not org_id.match("123456789012")
    rule = _props(template, "CentralBusRule")
    assert rule["EventBusName"] == {"Ref": "CentralBus"}
    pattern = rule["EventPattern"]
    assert sorted(pattern["source"]) == ["aws.ec2", "aws.route53profiles", "aws.route53resolver"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    assert pattern["detail"]["errorCode"] == [{"exists": False}]
    own = {"Fn::GetAtt": ["ReconcilerRole", "Arn"]}
    issuer_filters = [
        branch["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
        for branch in pattern["detail"]["$or"]
    ]
    assert issuer_filters == [[{"anything-but": [own]}], [{"exists": False}]]
    # The member role's calls, in every account, by its name.
    member = pattern["detail"]["$or"][0]["userIdentity"]["sessionContext"]["sessionIssuer"]
    assert member["userName"] == [{"anything-but": [{"Fn::Sub": "resolver-mesh-member-${MeshId}"}]}]


def test_queue_policy_lets_only_the_two_rules_send(template: dict[str, Any]) -> None:
    policy = _props(template, "ReconcileQueuePolicy")
    assert policy["Queues"] == [{"Ref": "ReconcileQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["ReconcileQueue", "Arn"]}
    assert statement["Condition"] == {
        "ArnEquals": {
            "aws:SourceArn": [
                {"Fn::GetAtt": ["CentralBusRule", "Arn"]},
                {"Fn::GetAtt": ["ResyncSchedule", "Arn"]},
            ]
        }
    }


def test_pipe_from_the_hubs_stream(template: dict[str, Any]) -> None:
    pipe = _props(template, "HubsTablePipe")
    assert pipe["Source"] == {"Fn::GetAtt": ["HubsTable", "StreamArn"]}
    stream = pipe["SourceParameters"]["DynamoDBStreamParameters"]
    assert stream["StartingPosition"] == "LATEST"
    assert 1 <= stream["BatchSize"] <= 10
    assert pipe["RoleArn"] == {"Fn::GetAtt": ["HubsTablePipeRole", "Arn"]}
    role = _props(template, "HubsTablePipeRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "pipes.amazonaws.com"}
    sends = [
        st
        for owner, st in _statements(template)
        if owner == "HubsTablePipeRole" and "sqs:SendMessage" in _as_list(st["Action"])
    ]
    assert [st["Resource"] for st in sends] == [{"Fn::GetAtt": ["ReconcileQueue", "Arn"]}]


def test_alarms_on_dead_letters_and_reconcile_errors(template: dict[str, Any]) -> None:
    alarms = _resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {"DeadLetterAlarm", "ApplyDeadLetterAlarm", "ReconcileErrorsAlarm"}
    dead = alarms["DeadLetterAlarm"]["Properties"]
    assert dead["Namespace"] == "AWS/SQS"
    assert dead["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dead["Dimensions"] == [
        {
            "Name": "QueueName",
            "Value": {"Fn::GetAtt": ["ReconcileDeadLetterQueue", "QueueName"]},
        }
    ]
    errors = alarms["ReconcileErrorsAlarm"]["Properties"]
    # The metric Powertools emits: the function's namespace, dimension service=<service name>.
    (fn,) = _functions(template).values()
    env = fn["Properties"]["Environment"]["Variables"]
    assert errors["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"] == "ResolverMesh"
    assert errors["MetricName"] == "Errors"
    assert errors["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert errors["Statistic"] == "Sum"
    assert errors["Period"] == 300
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["Threshold"] == 0, name
        assert props["ComparisonOperator"] == "GreaterThanThreshold", name
        assert props["TreatMissingData"] == "notBreaching", name
        for key in ("AlarmActions", "OKActions"):
            assert props[key] == {
                "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
            }, name
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    topic = re.compile(template["Parameters"]["AlarmTopicArn"]["AllowedPattern"])
    assert topic.match("")
    assert topic.match("arn:aws:sns:us-east-1:123456789012:ops-alerts")
    assert not topic.match("ops-alerts")


# --------------------------------------------------------------------------------------------
# samconfig.toml


def test_samconfig_defaults() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    assert config["version"] == 0.1
    default = config["default"]
    assert default["global"]["parameters"]["stack_name"] == "resolver-mesh"
    assert default["build"]["parameters"]["cached"] is True
    assert default["build"]["parameters"]["parallel"] is True
    deploy = default["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    # SAM splits overrides on spaces: a value with a space must be quoted inside the string.
    for env in config.values():
        if not isinstance(env, dict):
            continue
        overrides = env.get("deploy", {}).get("parameters", {}).get("parameter_overrides", [])
        for item in _as_list(overrides):
            key, sep, value = item.partition("=")
            assert key, item
            assert sep, item
            if " " in value or value == "":
                assert re.fullmatch(r'"[^"]*"', value), item


# --------------------------------------------------------------------------------------------
# events/


EVENT_FILES = sorted(EVENTS.glob("*.json"))


def test_expected_events_exist() -> None:
    names = {p.name for p in EVENT_FILES}
    assert {
        "manual-plan.json",
        "manual-resync.json",
        "manual-resync-scoped.json",
        "scheduled.json",
    } <= names


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.name)
def test_event_parses(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(event, dict)


@pytest.mark.parametrize(
    "path", [p for p in EVENT_FILES if p.name.startswith("manual-")], ids=lambda p: p.name
)
def test_manual_event_has_valid_action(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert event["action"] in MANUAL_ACTIONS
    assert set(event) <= {"action", "regions"}
    if "regions" in event:
        assert isinstance(event["regions"], list)
        assert event["regions"]
        assert all(isinstance(r, str) and REGION_RE.match(r) for r in event["regions"])


def test_scheduled_event_is_real_shaped() -> None:
    event = json.loads((EVENTS / "scheduled.json").read_text(encoding="utf-8"))
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["version"] == "0"
    assert re.fullmatch(r"\d{12}", event["account"])
    assert REGION_RE.match(event["region"])
    assert event["detail"] == {}
    (rule_arn,) = event["resources"]
    assert rule_arn.startswith(f"arn:aws:events:{event['region']}:{event['account']}:rule/")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])


# --- security scanner ----------------------------------------------------------------------

CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"  # installed by `make test`


def test_checkov_is_clean_and_every_skip_is_justified(template: dict[str, Any]) -> None:

    command = [str(CHECKOV), "-f", str(TEMPLATE), "--framework", "cloudformation"]
    command += ["--skip-download", "--quiet", "--output", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout) if result.stdout.startswith("{") else None
    assert report, result.stdout + result.stderr
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > 0
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(str(skip.get("comment", ""))) > 40, f"{name}: skip {skip} needs a reason"


def _evaluate(node: Any, parameters: dict[str, str]) -> Any:
    """The rule intrinsics the template's Rules use: Ref, Equals, Not."""
    if isinstance(node, dict) and len(node) == 1:
        [(name, value)] = node.items()
        if name == "Ref":
            return parameters[value]
        if name == "Fn::Equals":
            left, right = (_evaluate(v, parameters) for v in value)
            return left == right
        if name == "Fn::Not":
            return not _evaluate(value[0], parameters)
    return node


@pytest.mark.parametrize(
    ("ous", "organization", "accepted"),
    [
        ("", "", True),
        ("", "o-abcdefghij", True),
        ("ou-abcd-12345678", "o-abcdefghij", True),
        ("r-abcd", "", False),
        ("ou-abcd-12345678", "", False),
    ],
)
def test_member_ous_need_the_organisation_id_that_lets_their_events_in(
    template: dict[str, Any], ous: str, organization: str, accepted: bool
) -> None:
    """CloudFormation's Rules, evaluated here: with MemberOrganizationalUnits, a stack without
    OrganizationId is refused before it is made (the central bus would refuse every member
    account's events)."""
    parameters = {"MemberOrganizationalUnits": ous, "OrganizationId": organization}
    holds = True
    for rule in template["Rules"].values():
        if _evaluate(rule["RuleCondition"], parameters):
            holds &= all(_evaluate(a["Assert"], parameters) for a in rule["Assertions"])
    assert holds is accepted
