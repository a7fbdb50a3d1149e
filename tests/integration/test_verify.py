"""`resolver-mesh verify` end to end on the HTTP emulator: after a resync every name resolves
privately (exit 0); a deleted association is a gap and an inbound IP change not yet resynced
leaves stale targets (exit 1); `--json` and `--format mermaid` say the same; nothing is written.
"""

from __future__ import annotations

from typing import Any

from meshkit import HOME_REGION

from mesh_emulator.scp import denied_regions

E1, E2, W2 = "us-east-1", "us-east-2", "us-west-2"
NAMES = 15  # 3 hubs x (2 default domains + the 3 names of the S3 interface endpoint)
S3 = ("s3-accesspoint", "s3-control", "s3")  # the S3 names, in the order of the columns
VPCS = 4  # 3 hub VPCs and us-east-1's workload VPC


def resynced(mesh: Any) -> Any:
    result = mesh.resync()
    assert result["ok"], result
    return mesh


def test_after_a_resync_every_name_resolves_privately(mesh: Any) -> None:
    resynced(mesh)
    before = mesh.snapshot()

    result = mesh.cli("verify")

    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert lines[0] == "How names resolve in mesh resolver-mesh (names end in .amazonaws.com):"
    assert lines[1].split() == [
        "VPC",
        *(
            name
            for region in (E1, E2, W2)
            for name in (*(f"{s3}.{region}" for s3 in S3), region, f"{region}.vpce")
        ),
    ]
    workload = mesh.hubs[E1].workload_vpc_ids[0]
    row = next(line for line in lines if workload in line)
    assert row.split("(workload)")[1].split() == (
        ["local"] * 5 + ["→", "us-east-2", "✓"] * 5 + ["→", "us-west-2", "✓"] * 5
    )
    assert lines[-1] == f"ok: {VPCS * 10} private, {VPCS * 5} local"
    assert mesh.snapshot() == before  # verify only reads


def test_json_lists_every_cell_with_its_targets(mesh: Any) -> None:
    resynced(mesh)

    result = mesh.cli("verify", "--json")

    assert result.code == 0
    data = result.json
    assert data["ok"] is True
    assert data["regions"] == [E1, E2, W2]
    assert len(data["vpcs"]) == VPCS
    assert len(data["names"]) == NAMES
    assert len(data["cells"]) == VPCS * NAMES
    assert data["problems"] == []
    cell = next(
        c
        for c in data["cells"]
        if c["vpc_id"] == mesh.hubs[W2].vpc_id and c["name"] == "s3.us-east-1.amazonaws.com."
    )
    assert cell["status"] == "private"
    assert cell["via"] == E1
    assert cell["rule_domain"] == "us-east-1.amazonaws.com."
    assert {(ip, 53) for ip in cell["targets"]} == mesh.inbound_ips(E1)
    assert mesh.cli("verify", "--format", "json").json == data


def test_a_deleted_association_is_a_gap(mesh: Any, aws: Any) -> None:
    resynced(mesh)
    workload = mesh.hubs[E1].workload_vpc_ids[0]
    rule = mesh.observe(E1).managed_rules_for("us-west-2.vpce.amazonaws.com")[0]
    aws("route53resolver", E1).disassociate_resolver_rule(ResolverRuleId=rule["Id"], VPCId=workload)

    result = mesh.cli("verify", "--json")

    assert result.code == 1
    assert [(p["vpc_id"], p["name"], p["status"]) for p in result.json["problems"]] == [
        (workload, "us-west-2.vpce.amazonaws.com.", "gap")
    ]
    text = mesh.cli("verify")
    assert text.code == 1
    assert "GAP" in text.out
    assert text.out.splitlines()[-1].startswith("NOT OK:")

    resynced(mesh)
    assert mesh.cli("verify").code == 0


def test_an_inbound_ip_change_without_a_resync_leaves_stale_targets(mesh: Any, aws: Any) -> None:
    resynced(mesh)
    hub = mesh.hubs[E2]
    resolver = aws("route53resolver", E2)
    old = resolver.list_resolver_endpoint_ip_addresses(ResolverEndpointId=hub.inbound_endpoint_id)[
        "IpAddresses"
    ][0]
    new_ip = old["Ip"].rsplit(".", 1)[0] + ".53"
    resolver.associate_resolver_endpoint_ip_address(
        ResolverEndpointId=hub.inbound_endpoint_id,
        IpAddress={"SubnetId": old["SubnetId"], "Ip": new_ip},
    )
    resolver.disassociate_resolver_endpoint_ip_address(
        ResolverEndpointId=hub.inbound_endpoint_id,
        IpAddress={"IpId": old["IpId"], "SubnetId": old["SubnetId"], "Ip": old["Ip"]},
    )

    result = mesh.cli("verify", "--json")

    assert result.code == 1
    stale = result.json["problems"]
    # every VPC of the other Regions, for us-east-2's two domains and its S3 names
    assert {(p["region"], p["name"]) for p in stale} == {
        (region, name)
        for region in (E1, W2)
        for name in (
            "us-east-2.amazonaws.com.",
            "us-east-2.vpce.amazonaws.com.",
            *(f"{s3}.us-east-2.amazonaws.com." for s3 in S3),
        )
    }
    assert len(stale) == 15  # us-east-1 has two VPCs
    assert {p["status"] for p in stale} == {"stale"}
    assert {tuple(p["stale_ips"]) for p in stale} == {(old["Ip"],)}
    assert {tuple(p["missing_ips"]) for p in stale} == {(new_ip,)}
    assert "→ us-east-2 STALE" in mesh.cli("verify").out

    resynced(mesh)  # the rules get the new targets in place
    assert mesh.cli("verify").code == 0


def test_mermaid_draws_the_mesh(mesh: Any) -> None:
    resynced(mesh)

    result = mesh.cli("verify", "--format", "mermaid")

    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[:4] == [
        "graph LR",
        '  us_east_1["us-east-1"]',
        '  us_east_2["us-east-2"]',
        '  us_west_2["us-west-2"]',
    ]
    edges = set(lines[4:])
    assert edges == {
        f'  {source.replace("-", "_")} -->|"s3-accesspoint.{target}, s3-control.{target},'
        f' s3.{target}, {target}, {target}.vpce"|'
        f" {target.replace('-', '_')}"
        for source in (E1, E2, W2)
        for target in (E1, E2, W2)
        if source != target
    }
    assert len(lines) == 4 + 6


def test_mermaid_marks_a_gap_with_a_dashed_edge(mesh: Any, aws: Any) -> None:
    resynced(mesh)
    rule = mesh.observe(W2).managed_rules_for("us-east-1.amazonaws.com")[0]
    aws("route53resolver", W2).disassociate_resolver_rule(
        ResolverRuleId=rule["Id"], VPCId=mesh.hubs[W2].vpc_id
    )

    result = mesh.cli("verify", "--format", "mermaid")

    assert result.code == 1
    lines = result.out.splitlines()
    # the S3 names fell under the us-east-1.amazonaws.com rule: gaps too
    gaps = "s3-accesspoint.us-east-1, s3-control.us-east-1, s3.us-east-1, us-east-1"
    assert f'  us_west_2 -.->|"GAP: {gaps}"| us_east_1' in lines
    assert '  us_west_2 -->|"us-east-1.vpce"| us_east_1' in lines


def test_the_console_script_verifies(mesh: Any) -> None:
    resynced(mesh)
    result = mesh.script("verify", "--json", "--home-region", HOME_REGION)
    assert result.code == 0, result.err
    assert result.json["ok"] is True


def test_an_excluded_region_is_never_read_and_its_names_are_unknown(
    mesh: Any, emulator: Any, monkeypatch: Any
) -> None:
    resynced(mesh)
    monkeypatch.setenv("EXCLUDED_REGIONS", W2)
    mesh.mesh_regions = (E1, E2)

    with denied_regions(emulator, [W2]) as denier:
        result = mesh.cli("verify", "--json")

    assert denier.refused == {}  # not one request signed for the excluded Region
    assert result.code == 1
    data = result.json
    assert data["ok"] is False
    assert any(W2 in error and "EXCLUDED_REGIONS" in error for error in data["errors"])
