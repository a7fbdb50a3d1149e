"""`hubs put` with a whole item (--file, --item): what conflicts with it is refused (exit 2,
nothing stored), and a malformed file is named with the position of the error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from meshkit import Mesh


@pytest.fixture
def mesh(make_mesh: Any) -> Mesh:
    built: Mesh = make_mesh(("us-west-2",), register=False)
    return built


def west_item(mesh: Mesh) -> dict[str, str]:
    west = mesh.hubs["us-west-2"]
    return {
        "region": "us-west-2",
        "vpc_id": west.vpc_id,
        "inbound_endpoint_id": west.inbound_endpoint_id,
    }


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hub.json"
    path.write_text(text)
    return str(path)


def refused(mesh: Mesh, *args: str) -> str:
    result = mesh.cli("hubs", "put", *args)
    assert result.code == 2, result.out + result.err
    assert mesh.stored() == {}
    assert result.out == ""
    assert "Traceback" not in result.err
    return result.err.strip()


def test_a_file_of_another_region_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(west_item(mesh)))
    err = refused(mesh, "us-east-2", "--file", path)
    assert err == f"resolver-mesh: {path} is the item of the Region 'us-west-2', not us-east-2"
    err = refused(mesh, "--region", "us-east-2", "--item", f"@{path}")
    assert err == f"resolver-mesh: {path} is the item of the Region 'us-west-2', not us-east-2"

    same = mesh.cli("hubs", "put", "us-west-2", "--file", path)
    assert same.code == 0, same.err
    assert mesh.stored() == {"us-west-2": west_item(mesh)}


def test_a_file_without_a_region_takes_region(mesh: Mesh, tmp_path: Path) -> None:
    item = west_item(mesh)
    del item["region"]
    path = write(tmp_path, json.dumps(item))
    result = mesh.cli("hubs", "put", "us-west-2", "--file", path)
    assert result.code == 0, result.err
    assert mesh.stored() == {"us-west-2": west_item(mesh)}


def test_field_flags_with_a_whole_item_are_refused_by_name(mesh: Mesh, tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(west_item(mesh)))
    err = refused(mesh, "--file", path, "--domains", "{region}.corp", "--disabled")
    assert err == (
        f"resolver-mesh: {path} is the whole item: --domains, --disabled cannot be added to it"
        " (put the fields in the item)"
    )
    err = refused(mesh, "--item", json.dumps(west_item(mesh)), "--vpc-id", "vpc-1")
    assert err.startswith("resolver-mesh: the item is the whole item: --vpc-id cannot be added")
    err = refused(mesh, "--item", f"@{path}", "--file", path)
    assert err == "resolver-mesh: give --item or --file, not both"


def test_region_and_region_flag_must_agree(mesh: Mesh) -> None:
    args = ("--vpc-id", "vpc-0123456789abcdef0", "--inbound-endpoint-id", "rslvr-in-0123456789")
    err = refused(mesh, "us-east-2", "--region", "us-west-2", *args)
    assert err == (
        "resolver-mesh: REGION us-east-2 and --region us-west-2 differ: give the Region once"
    )


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ('{"region": "us-west-2",\n  "vpc_id": vpc-1}', "line 2 column 13: Expecting value"),
        ('{"region": "us-west-2"', "line 1 column 23: Expecting ',' delimiter"),
        ("", "line 1 column 1: Expecting value"),
    ],
)
def test_a_malformed_file_is_named_with_the_position(
    mesh: Mesh, tmp_path: Path, text: str, position: str
) -> None:
    path = write(tmp_path, text)
    assert refused(mesh, "--file", path) == f"resolver-mesh: {path}: {position}"


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[]", "an array"), ('"us-west-2"', "a string"), ("null", "null"), ("true", "true or false")],
)
def test_an_item_that_is_not_an_object_is_refused(
    mesh: Mesh, tmp_path: Path, text: str, kind: str
) -> None:
    path = write(tmp_path, text)
    expected = f"resolver-mesh: {path}: the item must be a JSON object, not {kind}"
    assert refused(mesh, "--file", path) == expected
    assert refused(mesh, "--item", text) == expected.replace(path, "the item")


def test_the_refusal_reaches_a_shell_as_exit_status_2(mesh: Mesh, tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(west_item(mesh)))
    result = mesh.script("hubs", "put", "eu-west-1", "--file", path)
    assert result.code == 2
    assert result.err == (
        f"resolver-mesh: {path} is the item of the Region 'us-west-2', not eu-west-1\n"
    )
    assert mesh.stored() == {}
