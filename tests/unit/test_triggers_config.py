"""Lambda events to requests, and settings from environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from resolver_mesh.config import ConfigError, Settings
from resolver_mesh.models import Request
from resolver_mesh.safety import Guard
from resolver_mesh.triggers import BadRequestError, request_from_event

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"action": "plan"}, Request(apply=False)),
        ({"action": "resync"}, Request(apply=True)),
        (
            {"action": "resync", "regions": ["us-east-2"]},
            Request(apply=True, regions=("us-east-2",)),
        ),
        (
            {"action": "plan", "regions": ["us-west-2", "us-east-1", "us-west-2"]},
            Request(apply=False, regions=("us-east-1", "us-west-2")),
        ),
        ({"action": "resync", "force": True}, Request(apply=True, force=True)),
        ({"action": "plan", "force": False}, Request(apply=False, force=False)),
        ({"action": "plan", "regions": None}, Request(apply=False, regions=None)),
        ({"action": "resync", "trigger": "cli"}, Request(apply=True, trigger="cli")),
    ],
)
def test_manual_requests(event: dict[str, Any], expected: Request) -> None:
    assert request_from_event(event) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("manual-plan.json", Request(apply=False)),
        ("manual-resync.json", Request(apply=True)),
        ("manual-resync-scoped.json", Request(apply=True, regions=("us-east-2",))),
    ],
)
def test_manual_event_files(name: str, expected: Request) -> None:
    assert request_from_event(json.loads((EVENTS / name).read_text())) == expected


def test_scheduled_event_is_a_full_resync() -> None:
    event = json.loads((EVENTS / "scheduled.json").read_text())
    request = request_from_event(event)
    assert request == Request(apply=True, regions=None, force=False, trigger="schedule")


@pytest.mark.parametrize(
    "event",
    [
        {},
        None,
        [],
        "resync",
        {"detail-type": "AWS API Call via CloudTrail", "detail": {"awsRegion": "us-east-2"}},
        {"Records": [{"eventName": "MODIFY"}]},
        {"detail-type": "Scheduled Events"},
    ],
)
def test_unknown_shapes_are_a_full_resync(event: Any) -> None:
    request = request_from_event(event)
    assert request.apply is True
    assert request.regions is None
    assert request.force is False
    assert "every Region" in request.trigger


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"action": "apply"}, "'action'"),
        ({"action": None}, "'action'"),
        ({"action": "PLAN"}, "'action'"),
        ({"action": "resync", "regions": "us-east-2"}, "'regions'"),
        ({"action": "resync", "regions": [""]}, "'regions'"),
        ({"action": "resync", "regions": [1]}, "'regions'"),
        ({"action": "resync", "regions": {"us-east-2": True}}, "'regions'"),
        ({"action": "resync", "force": "true"}, "'force'"),
        ({"action": "resync", "force": 1}, "'force'"),
    ],
)
def test_bad_manual_requests_name_the_field(event: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequestError) as raised:
        request_from_event(event)
    assert field in str(raised.value)
    assert isinstance(raised.value, ValueError)


# --- Settings --------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.table_name == "resolver-mesh-hubs"
    assert settings.mesh_id == "resolver-mesh"
    assert settings.home_region is None
    assert settings.mesh_regions == ()
    assert settings.calls_per_second == 5.0
    assert settings.max_attempts == 6
    assert settings.guard == Guard(max_fraction=0.5, min_rules=10)


def test_blank_variables_mean_defaults() -> None:
    blank = {
        name: "  "
        for name in (
            "HUBS_TABLE_NAME",
            "MESH_ID",
            "HOME_REGION",
            "MESH_REGIONS",
            "CALLS_PER_SECOND",
            "MAX_ATTEMPTS",
            "MAX_CHANGE_FRACTION",
            "MIN_RULES_FOR_GUARD",
        )
    }
    assert Settings.from_env(blank) == Settings()


def test_every_variable_is_parsed() -> None:
    env = {
        "HUBS_TABLE_NAME": "hubs-prod",
        "MESH_ID": "prod-mesh",
        "HOME_REGION": "eu-west-1",
        "MESH_REGIONS": " us-east-1, us-east-2,,eu-west-1 ",
        "CALLS_PER_SECOND": "2.5",
        "MAX_ATTEMPTS": "3",
        "MAX_CHANGE_FRACTION": "0.25",
        "MIN_RULES_FOR_GUARD": "4",
    }
    settings = Settings.from_env(env)
    assert settings == Settings(
        table_name="hubs-prod",
        mesh_id="prod-mesh",
        home_region="eu-west-1",
        mesh_regions=("us-east-1", "us-east-2", "eu-west-1"),
        calls_per_second=2.5,
        max_attempts=3,
        guard=Guard(max_fraction=0.25, min_rules=4),
    )


def test_os_environ_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_ID", "from-environ")
    monkeypatch.setenv("HUBS_TABLE_NAME", "t-environ")
    settings = Settings.from_env()
    assert (settings.mesh_id, settings.table_name) == ("from-environ", "t-environ")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CALLS_PER_SECOND", "fast"),
        ("CALLS_PER_SECOND", "0"),
        ("CALLS_PER_SECOND", "-1"),
        ("CALLS_PER_SECOND", "nan"),
        ("MAX_ATTEMPTS", "six"),
        ("MAX_ATTEMPTS", "2.5"),
        ("MAX_ATTEMPTS", "0"),
        ("MAX_CHANGE_FRACTION", "half"),
        ("MAX_CHANGE_FRACTION", "1.5"),
        ("MAX_CHANGE_FRACTION", "-0.1"),
        ("MAX_CHANGE_FRACTION", "nan"),
        ("MIN_RULES_FOR_GUARD", "ten"),
        ("MIN_RULES_FOR_GUARD", "10.5"),
    ],
)
def test_bad_numbers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({name: value})
    assert name in str(raised.value)


@pytest.mark.parametrize(
    "mesh_id",
    ["has/slash", "has space", "dots.not.allowed", "x" * 49, "ünïcode", "has:colon"],
)
def test_bad_mesh_id(mesh_id: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"MESH_ID": mesh_id})
    assert "MESH_ID" in str(raised.value)


@pytest.mark.parametrize("mesh_id", ["a", "x" * 32, "Prod-Mesh-2"])
def test_good_mesh_id(mesh_id: str) -> None:
    assert Settings.from_env({"MESH_ID": mesh_id}).mesh_id == mesh_id


def test_overrides_win_over_the_environment() -> None:
    env = {"HUBS_TABLE_NAME": "env-table", "MESH_ID": "env-mesh", "CALLS_PER_SECOND": "2"}
    settings = Settings.from_env(
        env,
        table_name="flag-table",
        mesh_id="flag-mesh",
        mesh_regions=("us-west-2",),
        calls_per_second=None,  # not given: the environment's value stays
    )
    assert settings.table_name == "flag-table"
    assert settings.mesh_id == "flag-mesh"
    assert settings.mesh_regions == ("us-west-2",)
    assert settings.calls_per_second == 2.0


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="MESH_ID"):
        Settings.from_env({}, mesh_id="bad/id")


@pytest.mark.parametrize("mesh_id", ["a", "mesh_a", "blue-green", "x" * 48])
def test_good_mesh_ids(mesh_id: str) -> None:
    assert Settings.from_env({"MESH_ID": mesh_id}).mesh_id == mesh_id


def test_member_roles_are_role_arns_with_an_optional_external_id() -> None:
    member = "arn:aws:iam::222222222222:role/resolver-mesh-member-mesh"
    other = "arn:aws-cn:iam::333333333333:role/path/resolver-mesh-member-mesh"
    settings = Settings.from_env({"MEMBER_ROLES": f" {member}|ext-id-1 ,{other},"})
    assert [(a.account, a.role_arn, a.external_id) for a in settings.member_roles] == [
        ("222222222222", member, "ext-id-1"),
        ("333333333333", other, None),
    ]
    assert Settings.from_env({}).member_roles == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not-an-arn", "is not an id like"),
        ("arn:aws:iam::222222222222:user/someone", "is not an id like"),
        ("arn:aws:iam::222222222222:role/x|a", "external id"),
    ],
)
def test_bad_member_roles_name_the_entry(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="MEMBER_ROLES entry") as raised:
        Settings.from_env({"MEMBER_ROLES": value})
    assert problem in str(raised.value)
