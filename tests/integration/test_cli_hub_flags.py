"""`hubs put` and `hubs remove` also take the Region as `--region`, and an item as `--file`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshkit import Mesh


def test_put_and_remove_with_region_flags_and_an_item_file(make_mesh: Any, tmp_path: Path) -> None:
    mesh: Mesh = make_mesh(register=False)
    east2 = mesh.hubs["us-east-2"]
    put = mesh.cli(
        "hubs",
        "put",
        "--region",
        "us-east-2",
        "--vpc-id",
        east2.vpc_id,
        "--inbound-endpoint-id",
        east2.inbound_endpoint_id,
    )
    assert put.code == 0, put.err + put.out
    assert mesh.stored()["us-east-2"]["inbound_endpoint_id"] == east2.inbound_endpoint_id

    west = mesh.hubs["us-west-2"]
    item = {
        "region": "us-west-2",
        "vpc_id": west.vpc_id,
        "inbound_endpoint_id": west.inbound_endpoint_id,
        "outbound_endpoint_id": west.outbound_endpoint_id,
    }
    path = tmp_path / "hub.json"
    path.write_text(json.dumps(item))
    from_file = mesh.cli("hubs", "put", "--file", str(path))
    assert from_file.code == 0, from_file.err + from_file.out
    assert mesh.stored()["us-west-2"] == item

    removed = mesh.cli("hubs", "remove", "--region", "us-east-2")
    assert removed.code == 0
    assert set(mesh.stored()) == {"us-west-2"}
    nothing = mesh.cli("hubs", "remove")
    assert nothing.code == 2
    assert "Region" in nothing.err
