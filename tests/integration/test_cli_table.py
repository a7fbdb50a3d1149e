"""`resolver-mesh table create`: the hubs table as template.yaml declares it, on the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from resolver_mesh import cli
from resolver_mesh.local.topology import ClientFactory

REGION = "us-east-1"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([*args, "--home-region", REGION])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_create_makes_the_templates_table_and_a_second_run_changes_nothing(
    aws: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "table", "create", "--table", "hubs-a", "--mesh-id", "blue")
    assert code == 0, err
    assert out.startswith("created the hubs table hubs-a in us-east-1")

    dynamodb = aws("dynamodb", REGION)
    table = dynamodb.describe_table(TableName="hubs-a")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == [{"AttributeName": "region", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "region", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert table["SSEDescription"]["SSEType"] == "KMS"
    backups = dynamodb.describe_continuous_backups(TableName="hubs-a")
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert tags == [{"Key": "resolver-mesh:owner", "Value": "blue"}]

    code, out, err = run(capsys, "table", "create", "--table", "hubs-a", "--json")
    assert code == 0, err
    assert json.loads(out) == {"table": "hubs-a", "region": REGION, "created": False}
    assert dynamodb.list_tables()["TableNames"] == ["hubs-a"]


def test_table_create_takes_the_name_from_the_environment(
    aws: ClientFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBS_TABLE_NAME", "from-env")
    code, out, err = run(capsys, "table", "create")
    assert code == 0, err
    assert "from-env" in out
    assert aws("dynamodb", REGION).list_tables()["TableNames"] == ["from-env"]


def test_table_create_refuses_a_table_with_another_key(
    aws: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb = aws("dynamodb", REGION)
    other: dict[str, Any] = {
        "TableName": "taken",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    dynamodb.create_table(**other)
    code, out, err = run(capsys, "table", "create", "--table", "taken")
    assert code == 1
    assert out == ""
    assert "the table taken exists with the key" in err
    assert "'id'" in err
    assert "not a hubs table" in err
    assert "Traceback" not in err
    table = dynamodb.describe_table(TableName="taken")["Table"]
    assert table["KeySchema"] == other["KeySchema"]
    assert "StreamSpecification" not in table
