"""What the CLI shows: `hubs list` has the description, `verify` columns go by Region then
name, and `verify` refuses two output formats at once."""

from __future__ import annotations

from typing import Any

import pytest
from meshkit import Mesh

from resolver_mesh import cli
from resolver_mesh.local.topology import ClientFactory

E2, W2 = "us-east-2", "us-west-2"


def test_hubs_list_shows_the_description(make_mesh: Any) -> None:
    mesh: Mesh = make_mesh((E2, W2), items={W2: {"description": "west hub (team net)"}})

    result = mesh.cli("hubs", "list")

    assert result.code == 0, result.err
    header, east, west = result.out.splitlines()
    assert header.split() == [
        "REGION",
        "VPC",
        "INBOUND",
        "OUTBOUND",
        "VPC_IDS",
        "ENABLED",
        "DESCRIPTION",
    ]
    assert west.startswith(W2)
    assert west.endswith("  west hub (team net)")
    assert east.startswith(E2)
    assert east.split()[-1] == "-"
    listed = {item["region"]: item for item in mesh.cli("hubs", "list", "--json").json["hubs"]}
    assert listed[W2]["description"] == "west hub (team net)"
    assert "description" not in listed[E2]


def test_verify_columns_go_by_region_then_name(make_mesh: Any) -> None:
    # us-west-2 answers for corp.example: its column comes after us-east-2's, not first
    mesh: Mesh = make_mesh((E2, W2), items={W2: {"domains": ["corp.example"]}})

    result = mesh.cli("verify")

    assert result.out.splitlines()[1].split() == [
        "VPC",
        "s3-accesspoint.us-east-2",
        "s3-control.us-east-2",
        "s3.us-east-2",
        "us-east-2",
        "us-east-2.vpce",
        "corp.example",
    ]
    names = [column["name"] for column in mesh.cli("verify", "--json").json["names"]]
    assert names == [
        "s3-accesspoint.us-east-2.amazonaws.com.",
        "s3-control.us-east-2.amazonaws.com.",
        "s3.us-east-2.amazonaws.com.",
        "us-east-2.amazonaws.com.",
        "us-east-2.vpce.amazonaws.com.",
        "corp.example.",
    ]


@pytest.mark.parametrize("style", ["mermaid", "text"])
def test_verify_refuses_json_with_another_format(
    aws: ClientFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    style: str,
) -> None:
    monkeypatch.setenv("HOME_REGION", "us-east-1")
    code = cli.main(["verify", "--json", "--format", style])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert (
        captured.err
        == f"resolver-mesh: --json and --format {style} ask for two outputs: give one\n"
    )
