"""Checks of template.yaml, samconfig.toml and events/, all offline.

- cfn-lint (informational checks included) finds nothing;
- the paths the template names (handler file, layer folder, layer requirements) exist, and the
  handler module defines ``lambda_handler`` (read by AST: the module is never imported);
- the runtime is python3.12 or newer and the layer is built for the function's runtime;
- IAM grants no wildcard action, "*" resources only to read-only List/Describe actions, and every
  action the reconciler calls;
- the hubs table keeps point-in-time recovery and survives stack deletion;
- samtranslator transforms the template offline;
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
    "ec2:DescribeVpcs",
    "dynamodb:Scan",
    "dynamodb:GetItem",
    "dynamodb:Query",
}

# Actions without resource-level permissions: the only ones allowed on Resource "*".
STAR_RESOURCE_OK = re.compile(r"^(route53resolver:List\w+|ec2:Describe\w+)$")


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
            docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
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
    assert len(rules) == 1
    (rule,) = rules.values()
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "ResyncRate"}

    (fn,) = _resources_of_type(out, "AWS::Lambda::Function").values()
    # SAM renames a layer version with a content hash (CoreLayer<hash>).
    (layer_ref,) = fn["Properties"]["Layers"]
    assert layer_ref["Ref"].startswith("CoreLayer")
    assert resources[layer_ref["Ref"]]["Type"] == "AWS::Lambda::LayerVersion"
    # The function uses our role, so SAM generated none (and attached no managed policy).
    assert not _resources_of_type(out, "AWS::IAM::Role").keys() - {"ReconcilerRole"}
    # EventBridge may invoke the function.
    perms = _resources_of_type(out, "AWS::Lambda::Permission")
    assert any(p["Properties"]["Principal"] == "events.amazonaws.com" for p in perms.values())


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
        # BuildMethod python3.x: the package sits at the root of ContentUri.
        assert (content / "resolver_mesh").is_dir()
        requirements = content / "requirements.txt"
        assert requirements.is_file()
        for line in requirements.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert re.match(r"^[A-Za-z0-9_.\-\[\]]+\s*(==|>=|~=|<)", line), (
                    f"unpinned or odd requirement: {line!r}"
                )


def test_runtime_is_python312_or_newer(template: dict[str, Any]) -> None:
    layers = _resources_of_type(template, "AWS::Serverless::LayerVersion")
    for name, fn in _functions(template).items():
        runtime = _function_prop(template, fn, "Runtime")
        assert _runtime_version(runtime) >= (3, 12), f"{name}: {runtime}"
        archs = _function_prop(template, fn, "Architectures") or ["x86_64"]
        for layer_ref in fn["Properties"].get("Layers", []):
            layer = layers[layer_ref["Ref"]]
            # Compiled wheels (pydantic-core) are built for one runtime and one architecture.
            assert layer["Metadata"]["BuildMethod"] == runtime
            assert runtime in layer["Properties"]["CompatibleRuntimes"]
            assert layer["Metadata"].get("BuildArchitecture", "x86_64") in archs
            assert set(archs) <= set(layer["Properties"].get("CompatibleArchitectures", archs))


# --------------------------------------------------------------------------------------------
# function configuration


def test_function_settings(template: dict[str, Any]) -> None:
    (fn,) = _functions(template).values()
    props = fn["Properties"]
    assert props["Handler"] == "app.lambda_handler"
    assert props["Timeout"] == 300
    assert props["MemorySize"] == 256
    env = props["Environment"]["Variables"]
    assert env["HUBS_TABLE_NAME"] == {"Ref": "HubsTable"}
    assert env["MESH_ID"] == {"Ref": "MeshId"}
    assert env["MESH_REGIONS"] == {"Ref": "MeshRegions"}
    assert env["CALLS_PER_SECOND"] == {"Ref": "CallsPerSecond"}
    assert env["MAX_CHANGE_FRACTION"] == {"Ref": "MaxChangeFraction"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "resolver-mesh"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ResolverMesh"
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}

    schedules = [e for e in props["Events"].values() if e["Type"] == "Schedule"]
    assert len(schedules) == 1, "one classic EventBridge schedule (not ScheduleV2)"
    assert schedules[0]["Properties"]["Schedule"] == {"Ref": "ResyncRate"}


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
    for bad in ("a.b", "x" * 33, "", "under_score"):
        assert not pattern.match(bad), bad
    assert params["ResyncRate"]["Default"] == "rate(15 minutes)"
    assert params["MeshRegions"]["Default"] == ""
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
    ):
        assert key in outputs, key


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
    for owner, st in _statements(template):
        actions = [a for a in _as_list(st["Action"]) if a.startswith("dynamodb:")]
        if not actions:
            continue
        assert set(actions) <= {"dynamodb:Scan", "dynamodb:GetItem", "dynamodb:Query"}, owner
        assert _as_list(st["Resource"]) == [{"Fn::GetAtt": ["HubsTable", "Arn"]}], owner


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
