"""Fixtures for the end-to-end tests: a mesh of hubs on the HTTP emulator, and ways to drive it.

- `make_mesh(regions, ...)` builds one hub per Region with `build_hub` (us-east-1 gets a workload
  VPC), creates the hubs table, writes the items and points the settings (env vars) at them;
  `mesh` is the seed article's three-hub mesh.
- The `Mesh` it returns (see meshkit.py) invokes the Lambda handler, runs the CLI in-process or
  as a subprocess, and observes the live state with plain boto3.
- `observe(region)` lists rules and associations with plain boto3 (every page).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from meshkit import (
    DEFAULT_MESH_ID,
    DEFAULT_REGIONS,
    HOME_REGION,
    TABLE,
    Mesh,
    Observed,
    app,
    observe_region,
)

from resolver_mesh.local.topology import (
    ClientFactory,
    HubResources,
    build_hub,
    create_hubs_table,
    hub_item,
)


@pytest.fixture
def observe(aws: ClientFactory) -> Callable[[str], Observed]:
    """`observe(region)`: rules and associations listed with plain boto3."""
    return lambda region: observe_region(aws, region)


@pytest.fixture
def make_mesh(
    aws: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., Mesh]:
    """Factory: `make_mesh(regions=..., outbound=..., items=..., register=..., ...)`.

    - `outbound`: Regions whose hub gets an outbound endpoint (default: all).
    - `items`: per-Region attributes merged into the default item (e.g. peers, domains).
    - `register=False` builds the hubs and the table but writes no item.
    - `hubs`, `table`, `mesh_id`: reuse the hubs of another mesh with another table or mesh id.
    """
    monkeypatch.setattr(app, "_aws", None)  # no clients cached by an earlier test
    for name in ("MESH_ID", "HUBS_TABLE_NAME", "MESH_REGIONS", "HOME_REGION"):
        monkeypatch.delenv(name, raising=False)

    def factory(
        regions: Sequence[str] = DEFAULT_REGIONS,
        *,
        outbound: Sequence[str] | None = None,
        items: Mapping[str, Mapping[str, Any]] | None = None,
        register: bool = True,
        hubs: Mapping[str, HubResources] | None = None,
        table: str = TABLE,
        mesh_id: str = DEFAULT_MESH_ID,
    ) -> Mesh:
        built = dict(hubs or {})
        for region in regions:
            if region not in built:
                built[region] = build_hub(
                    aws,
                    region,
                    outbound=outbound is None or region in outbound,
                    workload_vpcs=1 if region == HOME_REGION else 0,
                )
        create_hubs_table(aws, HOME_REGION, table)
        mesh = Mesh(aws, monkeypatch, capsys, built, {}, table=table, mesh_id=mesh_id)
        if register:
            for region in regions:
                mesh.put(hub_item(built[region], **dict((items or {}).get(region, {}))))
        mesh.activate()
        return mesh

    return factory


@pytest.fixture
def mesh(make_mesh: Callable[..., Mesh]) -> Mesh:
    """The seed article's mesh: hubs in us-east-1 (with a workload VPC), us-east-2, us-west-2."""
    return make_mesh()
