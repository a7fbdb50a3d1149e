"""The `resolver-mesh` CLI end to end: in-process through `cli.main`, and as real subprocesses.

The main behaviours of "What reconciling means" again, through the CLI, plus the CLI's own
contract: `plan`, `apply`, `hubs put|list|remove`, `--json`, flags over env vars, exit statuses
(0 in step, 1 on conflicts, refusals and errors, 2 on bad usage).
"""

from __future__ import annotations

from typing import Any

import pytest
from meshkit import (
    FOUR_REGIONS,
    MESH_REGIONS,
    TABLE,
    domains_of,
    normalise,
    targets_of,
)

from resolver_mesh.local.topology import create_unmanaged_rule


def managed_ids(mesh: Any) -> dict[tuple[str, str], str]:
    return {
        (region, normalise(rule["DomainName"])): rule["Id"]
        for region, rules in mesh.managed_rules().items()
        for rule in rules
    }


class TestPlanAndApply:
    def test_plan_prints_the_changes_and_writes_nothing(self, mesh: Any) -> None:
        before = mesh.snapshot()
        result = mesh.cli("plan")
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert lines[0].startswith("Plan for mesh resolver-mesh in ")
        assert sum(1 for line in lines if line.strip().startswith("+ create rule")) == 12
        assert sum(1 for line in lines if line.strip().startswith("> associate")) == 16
        for region in ("us-east-1", "us-east-2", "us-west-2"):
            assert f"  {region}" in lines
        assert "us-east-2.vpce.amazonaws.com -> us-east-2" in result.out
        assert lines[-1].startswith("ok: 12 create rule, 16 associate;")
        assert " 0 writes" in lines[-1]
        assert mesh.snapshot() == before

    def test_plan_json_parses_and_writes_nothing(self, mesh: Any) -> None:
        before = mesh.snapshot()
        result = mesh.cli("plan", "--json")
        assert result.code == 0
        report = result.json
        assert report["applied"] is False
        assert report["counts"]["create_rule"] == 12
        assert report["counts"]["associate"] == 16
        assert report["calls"]["writes"] == 0
        assert report["trigger"] == "cli"
        assert mesh.snapshot() == before

    def test_apply_converges_and_a_second_apply_writes_nothing(self, mesh: Any) -> None:
        first = mesh.cli("apply", "--json")
        assert first.code == 0, first.out
        assert first.json["ok"] is True
        assert first.json["counts"]["create_rule"] == 12
        found = mesh.assert_converged()
        for (region, _), rule in found.items():
            tags = mesh.aws("route53resolver", region).list_tags_for_resource(
                ResourceArn=rule["Arn"]
            )["Tags"]
            assert {"Key": "resolver-mesh:owner", "Value": "resolver-mesh"} in tags

        second = mesh.cli("apply", "--json")
        assert second.code == 0
        assert second.json["calls"]["writes"] == 0
        assert second.json["changes"] == []

        text = mesh.cli("apply")
        assert text.code == 0
        assert "no changes: every Region is in step" in text.out
        assert text.out.splitlines()[-1].startswith("ok: 0 changes;")

    def test_apply_with_regions_changes_only_those(self, mesh: Any) -> None:
        result = mesh.cli("apply", "--regions", "us-east-2,us-west-2", "--json")
        assert result.code == 0
        assert result.json["regions"] == ["us-east-2", "us-west-2"]
        rules = mesh.managed_rules()
        assert len(rules["us-east-2"]) == len(rules["us-west-2"]) == 4
        assert rules["us-east-1"] == []

    def test_new_inbound_ips_update_the_same_rules(self, mesh: Any) -> None:
        assert mesh.cli("apply").code == 0
        before = managed_ids(mesh)
        hub = mesh.hubs["us-east-1"]
        mesh.aws("route53resolver", "us-east-1").associate_resolver_endpoint_ip_address(
            ResolverEndpointId=hub.inbound_endpoint_id,
            IpAddress={"SubnetId": hub.subnet_ids[1], "Ip": "10.0.1.99"},
        )
        result = mesh.cli("apply", "--json")
        assert result.code == 0
        assert result.json["counts"]["update_rule"] == 4
        assert result.json["counts"]["create_rule"] == result.json["counts"]["delete_rule"] == 0
        assert managed_ids(mesh) == before
        found = mesh.assert_converged()
        assert ("10.0.1.99", 53) in targets_of(found["us-west-2", "us-east-1.amazonaws.com."])

    @pytest.mark.parametrize("how", ["remove", "disable"])
    def test_a_hub_that_leaves_takes_its_rules_with_it(self, make_mesh: Any, how: str) -> None:
        mesh = make_mesh(FOUR_REGIONS)
        assert mesh.cli("apply").code == 0
        if how == "remove":
            assert mesh.cli("hubs", "remove", "eu-west-1").code == 0
            mesh.items.pop("eu-west-1")
        else:
            hub = mesh.hubs["eu-west-1"]
            put = mesh.cli(
                "hubs",
                "put",
                "eu-west-1",
                "--vpc-id",
                hub.vpc_id,
                "--inbound-endpoint-id",
                hub.inbound_endpoint_id,
                "--outbound-endpoint-id",
                str(hub.outbound_endpoint_id),
                "--disabled",
            )
            assert put.code == 0, put.out
            mesh.items["eu-west-1"] = mesh.stored()["eu-west-1"]
            assert mesh.items["eu-west-1"]["enabled"] is False

        result = mesh.cli("apply", "--json")

        assert result.code == 0, result.json["refused"]
        assert result.json["counts"]["delete_rule"] == 12
        assert mesh.observe("eu-west-1").managed() == []
        for region in MESH_REGIONS:
            assert not mesh.observe(region).orphans()
        mesh.assert_converged()

    def test_vpc_ids_follow_through_hubs_put(self, mesh: Any) -> None:
        assert mesh.cli("apply").code == 0
        hub = mesh.hubs["us-east-2"]
        extra = mesh.aws("ec2", "us-east-2").create_vpc(CidrBlock="10.5.0.0/16")["Vpc"]["VpcId"]
        args = ["hubs", "put", "us-east-2", "--vpc-id", hub.vpc_id]
        args += ["--inbound-endpoint-id", hub.inbound_endpoint_id]
        args += ["--outbound-endpoint-id", str(hub.outbound_endpoint_id)]
        assert mesh.cli(*args, "--vpc-ids", extra).code == 0
        mesh.items["us-east-2"] = mesh.stored()["us-east-2"]
        result = mesh.cli("apply", "--json")
        assert result.json["counts"]["associate"] == 4
        mesh.assert_converged()

        assert mesh.cli(*args).code == 0
        mesh.items["us-east-2"] = mesh.stored()["us-east-2"]
        result = mesh.cli("apply", "--json")
        assert result.json["counts"]["disassociate"] == 4
        mesh.assert_converged()

    def test_peers_outbound_and_domains(self, make_mesh: Any) -> None:
        mesh = make_mesh(
            outbound=("us-east-1", "us-east-2"),
            items={
                "us-east-1": {"peers": ["us-west-2"]},
                "us-west-2": {"domains": ["{region}.corp.example"]},
            },
        )
        result = mesh.cli("apply", "--json")
        assert result.code == 0
        found = mesh.assert_converged()
        assert sorted(found) == [
            ("us-east-1", "us-west-2.corp.example."),
            ("us-east-2", "us-east-1.amazonaws.com."),
            ("us-east-2", "us-east-1.vpce.amazonaws.com."),
            ("us-east-2", "us-west-2.corp.example."),
        ]


class TestExitStatus:
    def test_a_conflict_exits_1_and_leaves_the_rule_alone(self, mesh: Any) -> None:
        hub = mesh.hubs["us-west-2"]
        theirs = create_unmanaged_rule(
            mesh.aws,
            "us-west-2",
            "us-east-1.vpce.amazonaws.com",
            str(hub.outbound_endpoint_id),
            "10.200.0.10",
            vpc_id=hub.vpc_id,
        )
        resolver = mesh.aws("route53resolver", "us-west-2")
        before = resolver.get_resolver_rule(ResolverRuleId=theirs)["ResolverRule"]

        text = mesh.cli("apply")
        assert text.code == 1
        assert "Conflicts:" in text.out
        assert theirs in text.out
        assert text.out.splitlines()[-1].startswith("NOT OK")

        again = mesh.cli("apply", "--json")
        assert again.code == 1
        assert [c["their_rule_id"] for c in again.json["conflicts"]] == [theirs]
        assert resolver.get_resolver_rule(ResolverRuleId=theirs)["ResolverRule"] == before
        assert mesh.observe("us-west-2").vpcs_of(theirs) == {hub.vpc_id}

    def test_the_guard_refuses_without_force_and_applies_with_it(self, make_mesh: Any) -> None:
        mesh = make_mesh(FOUR_REGIONS)
        assert mesh.cli("apply").code == 0
        for region in ("us-west-2", "eu-west-1"):
            hub = mesh.hubs[region]
            put = mesh.cli(
                "hubs",
                "put",
                region,
                "--vpc-id",
                hub.vpc_id,
                "--inbound-endpoint-id",
                hub.inbound_endpoint_id,
                "--outbound-endpoint-id",
                str(hub.outbound_endpoint_id),
                "--disabled",
            )
            assert put.code == 0
            mesh.items[region] = mesh.stored()[region]
        before = mesh.snapshot()

        refused = mesh.cli("apply")
        assert refused.code == 1
        assert "Refused:" in refused.out
        assert "--force" in refused.out
        assert mesh.snapshot() == before
        as_json = mesh.cli("apply", "--json")
        assert as_json.code == 1
        assert as_json.json["refused"]
        assert as_json.json["calls"]["writes"] == 0
        assert mesh.snapshot() == before

        forced = mesh.cli("apply", "--force", "--json")
        assert forced.code == 0
        assert forced.json["counts"]["delete_rule"] == 20
        mesh.assert_converged()

    def test_disabling_one_hub_of_three_passes_the_guard(self, mesh: Any) -> None:
        """README: the fraction is measured where hubs stay; one hub of three may leave."""
        assert mesh.cli("apply").code == 0
        hub = mesh.hubs["us-east-2"]
        put = mesh.cli(
            "hubs",
            "put",
            "--item",
            f'{{"region": "us-east-2", "vpc_id": "{hub.vpc_id}", "inbound_endpoint_id":'
            f' "{hub.inbound_endpoint_id}", "enabled": false}}',
        )
        assert put.code == 0
        mesh.items["us-east-2"] = mesh.stored()["us-east-2"]
        result = mesh.cli("apply", "--json")
        assert result.code == 0
        assert result.json["counts"]["delete_rule"] == 8
        mesh.assert_converged()

    def test_a_missing_table_exits_1_and_changes_nothing(self, mesh: Any) -> None:
        assert mesh.cli("apply").code == 0
        before = mesh.snapshot()
        result = mesh.cli("apply", "--force", "--table", "no-such-table", "--json")
        assert result.code == 1
        assert any("no-such-table" in e["message"] for e in result.json["errors"])
        assert result.json["calls"]["writes"] == 0
        assert mesh.snapshot() == before

    def test_hubs_commands_on_a_missing_table_exit_1(self, mesh: Any) -> None:
        hub = mesh.hubs["us-east-2"]
        item = ["--vpc-id", hub.vpc_id, "--inbound-endpoint-id", hub.inbound_endpoint_id]
        for args in (["list"], ["remove", "us-east-2"], ["put", "us-east-2", *item]):
            result = mesh.cli("--table", "no-such-table", "hubs", *args)
            assert result.code == 1, (args, result)
            assert "ResourceNotFoundException" in result.err
        assert set(mesh.stored()) == {"us-east-1", "us-east-2", "us-west-2"}

    def test_a_bad_hub_item_exits_1_and_names_region_and_field(self, mesh: Any) -> None:
        assert mesh.cli("apply").code == 0
        kept = managed_ids(mesh)
        mesh.update("us-east-2", vpc_id="vpc-NOPE")
        result = mesh.cli("apply", "--json")
        assert result.code == 1
        assert {(e["region"], e["field"]) for e in result.json["errors"]} == {
            ("us-east-2", "vpc_id")
        }
        assert managed_ids(mesh) == kept
        text = mesh.cli("plan")
        assert text.code == 1
        assert "hub item 'us-east-2': field 'vpc_id'" in text.out

    @pytest.mark.parametrize(
        "args",
        [
            [],
            ["frobnicate"],
            ["apply", "--bogus"],
            ["hubs"],
            ["hubs", "put", "us-east-1"],
            ["plan", "--mesh-id", "not a valid id!"],
            ["plan", "--calls-per-second", "fast"],
            ["hubs", "put", "--item", "[1, 2]"],
        ],
    )
    def test_bad_usage_exits_2_and_writes_nothing(self, mesh: Any, args: list[str]) -> None:
        before = (mesh.snapshot(), mesh.stored())
        result = mesh.cli(*args)
        assert result.code == 2
        assert result.err.strip()
        assert (mesh.snapshot(), mesh.stored()) == before


class TestSettings:
    def test_flags_override_the_environment(self, mesh: Any) -> None:
        mesh.table, mesh.mesh_id = "table-from-env", "from-env"  # what the env vars now say
        result = mesh.cli("apply", "--table", TABLE, "--mesh-id", "from-flag", "--json")
        assert result.code == 0, result.err
        assert result.json["mesh_id"] == "from-flag"
        for region in ("us-east-1", "us-east-2", "us-west-2"):
            seen = mesh.observe(region)
            assert len(seen.managed("from-flag")) == 4
            assert seen.managed("from-env") == []
            assert seen.managed("resolver-mesh") == []
            resolver = mesh.aws("route53resolver", region)
            for rule in seen.managed("from-flag"):
                tags = resolver.list_tags_for_resource(ResourceArn=rule["Arn"])["Tags"]
                assert {"Key": "resolver-mesh:owner", "Value": "from-flag"} in tags
                assert rule["Name"].startswith("from-flag-")
        # without the flags, the environment's (missing) table is used
        assert mesh.cli("plan").code == 1
        # flags may also stand before the command
        before = mesh.cli("--table", TABLE, "--mesh-id", "from-flag", "plan", "--json")
        assert before.code == 0
        assert before.json["changes"] == []

    def test_two_meshes_never_touch_each_others_rules(self, make_mesh: Any) -> None:
        mesh_b = make_mesh(
            table="hubs-b",
            mesh_id="b",
            items={
                r: {"domains": ["{region}.b.example"]}
                for r in ("us-east-1", "us-east-2", "us-west-2")
            },
        )
        assert mesh_b.cli("apply").code == 0
        b_state = mesh_b.snapshot()
        mesh_a = make_mesh(table="hubs-a", mesh_id="a", hubs=mesh_b.hubs)
        assert mesh_a.cli("apply").code == 0
        assert len(managed_ids(mesh_a)) == 12
        for region in ("us-east-1", "us-east-2", "us-west-2"):
            assert mesh_a.cli("hubs", "remove", region).code == 0
        mesh_a.items.clear()

        assert mesh_a.cli("apply").code == 1  # removing every rule of mesh a needs --force
        result = mesh_a.cli("apply", "--force", "--json")

        assert result.code == 0
        assert result.json["counts"]["delete_rule"] == 12
        assert managed_ids(mesh_a) == {}
        assert mesh_b.snapshot() == b_state
        assert mesh_b.stored().keys() == {"us-east-1", "us-east-2", "us-west-2"}
        mesh_b.assert_converged()

    def test_rules_we_do_not_own_are_never_touched(self, mesh: Any) -> None:
        resolver = mesh.aws("route53resolver", "us-east-2")
        theirs = create_unmanaged_rule(
            mesh.aws,
            "us-east-2",
            "us-west-2.amazonaws.com",
            str(mesh.hubs["us-east-2"].outbound_endpoint_id),
            "10.9.9.9",
        )
        before = resolver.get_resolver_rule(ResolverRuleId=theirs)["ResolverRule"]
        assert mesh.cli("apply").code == 0
        assert mesh.cli("hubs", "remove", "us-west-2").code == 0
        mesh.items.pop("us-west-2")
        assert mesh.cli("apply").code == 0
        assert resolver.get_resolver_rule(ResolverRuleId=theirs)["ResolverRule"] == before
        mesh.assert_converged()


class TestHubsCommands:
    def test_put_list_remove(self, make_mesh: Any) -> None:
        mesh = make_mesh(register=False)
        east1, east2, west2 = (mesh.hubs[r] for r in ("us-east-1", "us-east-2", "us-west-2"))
        assert mesh.cli("hubs", "list").out.strip() == "no hubs in the table"

        put = mesh.cli(
            "hubs",
            "put",
            "us-east-1",
            "--vpc-id",
            east1.vpc_id,
            "--inbound-endpoint-id",
            east1.inbound_endpoint_id,
            "--outbound-endpoint-id",
            str(east1.outbound_endpoint_id),
            "--vpc-ids",
            *east1.workload_vpc_ids,
        )
        assert put.code == 0, put.out
        assert "us-east-1" in put.out
        assert mesh.stored()["us-east-1"] == {
            "region": "us-east-1",
            "vpc_id": east1.vpc_id,
            "inbound_endpoint_id": east1.inbound_endpoint_id,
            "outbound_endpoint_id": east1.outbound_endpoint_id,
            "vpc_ids": list(east1.workload_vpc_ids),
        }
        as_json = mesh.cli(
            "hubs",
            "put",
            "us-east-2",
            "--vpc-id",
            east2.vpc_id,
            "--inbound-endpoint-id",
            east2.inbound_endpoint_id,
            "--json",
        )
        assert as_json.code == 0
        assert as_json.json["stored"] is True
        assert "outbound_endpoint_id" not in mesh.stored()["us-east-2"]
        for hub in (west2,):
            args = ["--vpc-id", hub.vpc_id, "--inbound-endpoint-id", hub.inbound_endpoint_id]
            outbound = ["--outbound-endpoint-id", str(hub.outbound_endpoint_id)]
            assert mesh.cli("hubs", "put", hub.region, *args, *outbound).code == 0

        listed = mesh.cli("hubs", "list", "--json")
        assert listed.code == 0
        assert {h["region"] for h in listed.json["hubs"]} == {"us-east-1", "us-east-2", "us-west-2"}
        assert listed.json["errors"] == []
        text = mesh.cli("hubs", "list")
        assert text.out.splitlines()[0].split() == [
            "REGION",
            "VPC",
            "INBOUND",
            "OUTBOUND",
            "VPC_IDS",
            "ENABLED",
            "DESCRIPTION",
        ]
        assert east1.workload_vpc_ids[0] in text.out

        mesh.items.update(mesh.stored())
        assert mesh.cli("apply").code == 0
        found = mesh.assert_converged()
        assert len(found) == 8  # us-east-2 has no outbound endpoint: it only answers

        removed = mesh.cli("hubs", "remove", "us-east-2", "--json")
        assert removed.code == 0
        assert removed.json["removed"] is True
        assert "us-east-2" not in mesh.stored()
        again = mesh.cli("hubs", "remove", "us-east-2")
        assert again.code == 1
        assert "no hub for us-east-2" in again.out

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"--vpc-id": "vpc-XYZ"}, "vpc_id"),
            ({"--inbound-endpoint-id": "rslvr-out-0123456789abcdef0"}, "inbound_endpoint_id"),
            ({"--outbound-endpoint-id": "vpc-0123456789abcdef0"}, "outbound_endpoint_id"),
            ({"--vpc-ids": "vpc-1"}, "vpc_ids"),
            ({"--peers": "ap-southeast-2"}, "peers"),
            ({"--peers": "us-east-2"}, "peers"),  # its own Region
            ({"--domains": "{zone}.example"}, "domains"),
            ({"--domains": "us-east-1.amazonaws.com"}, "domains"),  # another hub's domain
            ({"region": "mars-north-9"}, "region"),
        ],
    )
    def test_put_of_a_bad_item_is_refused_and_stores_nothing(
        self, mesh: Any, change: dict[str, str], field: str
    ) -> None:
        hub = mesh.hubs["us-east-2"]
        fields = {
            "region": "us-east-2",
            "--vpc-id": hub.vpc_id,
            "--inbound-endpoint-id": hub.inbound_endpoint_id,
            "--outbound-endpoint-id": str(hub.outbound_endpoint_id),
            "--description": "changed",
            **change,
        }
        args = [fields.pop("region")] + [part for pair in fields.items() for part in pair]
        before = mesh.stored()

        result = mesh.cli("hubs", "put", *args)

        assert result.code == 1
        assert result.out.startswith("not stored:")
        assert f"field '{field}" in result.out  # e.g. 'vpc_ids.0' for a list entry
        as_json = mesh.cli("hubs", "put", *args, "--json")
        assert as_json.code == 1
        assert as_json.json["stored"] is False
        assert any(f"field '{field}" in e for e in as_json.json["errors"])
        assert mesh.stored() == before

    def test_list_reports_a_bad_stored_item(self, mesh: Any) -> None:
        mesh.update("us-west-2", vpc_id="vpc-bad")
        result = mesh.cli("hubs", "list")
        assert result.code == 1
        assert "! hub item 'us-west-2': field 'vpc_id'" in result.out


class TestConsoleScript:
    """The installed entry points, as a person or a pipeline runs them."""

    def test_apply_then_plan_as_subprocesses(self, mesh: Any) -> None:
        applied = mesh.script("apply", "--json")
        assert applied.code == 0, applied.err
        assert applied.json["counts"]["create_rule"] == 12
        mesh.assert_converged()

        planned = mesh.script("plan", "--json", module=True)
        assert planned.code == 0, planned.err
        assert planned.json["changes"] == []
        assert planned.json["calls"]["writes"] == 0

        text = mesh.script("plan")
        assert text.code == 0
        assert "\033[" not in text.out  # no colours when stdout is not a terminal
        assert "no changes: every Region is in step" in text.out

    def test_hubs_list_and_exit_statuses_as_subprocesses(self, mesh: Any) -> None:
        listed = mesh.script("hubs", "list", "--json", module=True)
        assert listed.code == 0, listed.err
        assert {h["region"] for h in listed.json["hubs"]} == set(mesh.items)

        usage = mesh.script("apply", "--no-such-flag")
        assert usage.code == 2
        assert "usage:" in usage.err

        hub = mesh.hubs["us-east-1"]
        create_unmanaged_rule(
            mesh.aws,
            "us-east-1",
            "us-west-2.amazonaws.com",
            str(hub.outbound_endpoint_id),
            "10.9.9.9",
            vpc_id=hub.vpc_id,
        )
        conflict = mesh.script("apply", "--json")
        assert conflict.code == 1
        assert len(conflict.json["conflicts"]) == 1

        missing = mesh.script("plan", HUBS_TABLE_NAME="no-such-table")
        assert missing.code == 1
        assert "no-such-table" in missing.out


def test_every_own_domain_is_left_out(mesh: Any) -> None:
    assert mesh.cli("apply").code == 0
    for region in ("us-east-1", "us-east-2", "us-west-2"):
        own = domains_of(mesh.items[region])
        assert all(mesh.observe(region).rules_for(domain) == [] for domain in own)
