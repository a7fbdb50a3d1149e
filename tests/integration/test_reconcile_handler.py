"""Issue 2's "What reconciling means", end to end through the Lambda handler and the emulator.

Every test builds hubs in at least three Regions, drives `lambda_handler`, and checks the live
state with plain boto3 (`Mesh.observe`), against rules derived from the items independently
(`Mesh.expected`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from meshkit import (
    FOUR_REGIONS,
    MESH_REGIONS,
    domains_of,
    normalise,
    targets_of,
)

from resolver_mesh.local.topology import create_unmanaged_rule

EVENTS = Path(__file__).resolve().parents[2] / "events"
SPARE_IP = {"us-east-1": "10.0.0.53", "us-east-2": "10.4.0.53", "us-west-2": "10.12.0.53"}
NO_CHANGES = {
    "adopt_rule": 0,
    "create_rule": 0,
    "update_rule": 0,
    "associate": 0,
    "disassociate": 0,
    "delete_rule": 0,
}


def event_file(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def rule_ids_for(
    mesh: Any, target: str, wanted: set[str] | None = None
) -> dict[tuple[str, str], str]:
    """(Region, domain) -> id of the managed rules that forward `target`'s (or `wanted`) domains."""
    wanted = wanted or domains_of(mesh.items[target])
    return {
        (region, normalise(rule["DomainName"])): rule["Id"]
        for region in MESH_REGIONS
        for rule in mesh.observe(region).managed(mesh.mesh_id)
        if normalise(rule["DomainName"]) in wanted
    }


def add_inbound_ip(mesh: Any, region: str, ip: str) -> None:
    hub = mesh.hubs[region]
    mesh.aws("route53resolver", region).associate_resolver_endpoint_ip_address(
        ResolverEndpointId=hub.inbound_endpoint_id,
        IpAddress={"SubnetId": hub.subnet_ids[0], "Ip": ip},
    )


def unmanaged_state(mesh: Any, region: str, rule_id: str) -> tuple[Any, ...]:
    """Everything about a rule we do not own that a reconcile must never change."""
    resolver = mesh.aws("route53resolver", region)
    rule = resolver.get_resolver_rule(ResolverRuleId=rule_id)["ResolverRule"]
    return (rule, sorted(mesh.observe(region).vpcs_of(rule_id)))


# --- the full mesh --------------------------------------------------------------------------------


class TestFullMesh:
    def test_converges_to_one_forward_rule_per_region_and_peer_domain(self, mesh: Any) -> None:
        result = mesh.resync()

        assert result["ok"] is True, result["errors"]
        assert result["applied"] is True
        assert result["errors"] == result["conflicts"] == result["refused"] == []
        # 3 source Regions x 2 peers x 2 domains; us-east-1 associates with 2 VPCs.
        assert result["counts"] == {**NO_CHANGES, "create_rule": 12, "associate": 16}
        assert set(result["regions"]) == set(MESH_REGIONS)
        assert all(change["status"] == "applied" for change in result["changes"])
        found = mesh.assert_converged()
        assert len(found) == 12

        east1 = mesh.hubs["us-east-1"]
        for domain, target in (
            ("us-east-2.amazonaws.com.", "us-east-2"),
            ("us-east-2.vpce.amazonaws.com.", "us-east-2"),
            ("us-west-2.amazonaws.com.", "us-west-2"),
            ("us-west-2.vpce.amazonaws.com.", "us-west-2"),
        ):
            rule = found["us-east-1", domain]
            assert rule["ResolverEndpointId"] == east1.outbound_endpoint_id
            assert targets_of(rule) == set(mesh.inbound_ips(target))
            assert all(port == 53 for _, port in targets_of(rule))
            assert len(targets_of(rule)) == 2
            assert mesh.observe("us-east-1").vpcs_of(rule["Id"]) == {
                east1.vpc_id,
                *east1.workload_vpc_ids,
            }
        for region in ("us-east-2", "us-west-2"):
            assert {
                mesh.observe(region).vpcs_of(r["Id"]).pop() for r in mesh.observe(region).managed()
            } == {mesh.hubs[region].vpc_id}
        assert mesh.managed_rules(("eu-west-1", "ap-southeast-2")) == {
            "eu-west-1": [],
            "ap-southeast-2": [],
        }

    def test_a_region_never_gets_rules_for_its_own_domains(self, mesh: Any, observe: Any) -> None:
        mesh.resync()
        for region in ("us-east-1", "us-east-2", "us-west-2"):
            seen = observe(region)
            assert seen.rules_for(f"{region}.amazonaws.com") == []
            own = domains_of(mesh.items[region])
            assert {normalise(r["DomainName"]) for r in seen.managed()}.isdisjoint(own)
            assert len(seen.managed()) == 4

    def test_every_managed_rule_has_a_dot_free_name_and_the_owner_tag(self, mesh: Any) -> None:
        mesh.resync()
        checked = 0
        for region in ("us-east-1", "us-east-2", "us-west-2"):
            resolver = mesh.aws("route53resolver", region)
            for rule in mesh.observe(region).managed():
                assert rule["Name"]
                assert "." not in rule["Name"]
                assert len(rule["Name"]) <= 64
                tags = resolver.list_tags_for_resource(ResourceArn=rule["Arn"])["Tags"]
                assert {"Key": "resolver-mesh:owner", "Value": "resolver-mesh"} in tags
                assert rule["CreatorRequestId"].startswith("resolver-mesh/resolver-mesh/")
                checked += 1
        assert checked == 12

    def test_a_second_resync_makes_zero_writes(self, mesh: Any) -> None:
        mesh.resync()
        before = mesh.snapshot()
        again = mesh.resync()
        assert again["ok"] is True
        assert again["calls"]["writes"] == 0
        assert again["calls"]["reads"] > 0
        assert again["counts"] == NO_CHANGES
        assert again["changes"] == []
        assert mesh.snapshot() == before

    def test_plan_returns_changes_and_counts_and_writes_nothing(self, mesh: Any) -> None:
        before = mesh.snapshot()
        plan = mesh.plan()

        assert plan["ok"] is True
        assert plan["action"] == "plan"
        assert plan["applied"] is False
        assert plan["calls"]["writes"] == 0
        assert plan["counts"] == {**NO_CHANGES, "create_rule": 12, "associate": 16}
        assert len(plan["changes"]) == 28
        assert {c["status"] for c in plan["changes"]} == {"planned"}
        creates = [c for c in plan["changes"] if c["kind"] == "create_rule"]
        assert {(c["region"], c["domain"]) for c in creates} == set(mesh.expected())
        assert mesh.snapshot() == before
        assert all(not rules for rules in mesh.managed_rules().values())

        applied = mesh.resync()

        def key(change: dict[str, Any]) -> tuple[str, str, str, Any]:
            return change["kind"], change["region"], change["domain"], change.get("vpc_id")

        assert Counter(map(key, applied["changes"])) == Counter(map(key, plan["changes"]))

    def test_plan_of_a_converged_mesh_is_empty_and_plan_shows_a_pending_change(
        self, mesh: Any
    ) -> None:
        mesh.resync()
        assert mesh.plan()["changes"] == []
        mesh.update("us-east-1", vpc_ids=None)
        before = mesh.snapshot()
        plan = mesh.plan()
        assert plan["counts"] == {**NO_CHANGES, "disassociate": 4}
        workload = mesh.hubs["us-east-1"].workload_vpc_ids[0]
        assert {(c["region"], c["vpc_id"]) for c in plan["changes"]} == {("us-east-1", workload)}
        assert plan["calls"]["writes"] == 0
        assert mesh.snapshot() == before

    def test_the_scheduled_event_triggers_a_full_resync(self, mesh: Any) -> None:
        result = mesh.invoke(event_file("scheduled.json"))
        assert result["ok"] is True
        assert result["trigger"] == "schedule"
        assert result["action"] == "resync"
        assert result["applied"] is True
        assert set(result["regions"]) == set(MESH_REGIONS)
        mesh.assert_converged()

    def test_the_shipped_manual_events_do_what_their_names_say(self, mesh: Any) -> None:
        before = mesh.snapshot()
        plan = mesh.invoke(event_file("manual-plan.json"))
        assert (plan["applied"], plan["calls"]["writes"], len(plan["changes"])) == (False, 0, 28)
        assert mesh.snapshot() == before

        scoped = mesh.invoke(event_file("manual-resync-scoped.json"))
        assert scoped["regions"] == ["us-east-2"]
        assert {c["region"] for c in scoped["changes"]} == {"us-east-2"}
        assert [r for r, rules in mesh.managed_rules().items() if rules] == ["us-east-2"]

        full = mesh.invoke(event_file("manual-resync.json"))
        assert full["ok"] is True
        assert full["counts"]["create_rule"] == 8
        mesh.assert_converged()

    @pytest.mark.parametrize(
        ("event", "mentions"),
        [
            ({"action": "destroy"}, "action"),
            ({"action": "resync", "regions": "us-east-2"}, "regions"),
            ({"action": "resync", "regions": [""]}, "regions"),
            ({"action": "resync", "force": "yes"}, "force"),
            ({"action": None}, "action"),
            ({"action": "resync", "regions": ["mars-north-9"]}, "mars-north-9"),
        ],
    )
    def test_a_bad_manual_event_is_refused_with_a_message(
        self, mesh: Any, event: dict[str, Any], mentions: str
    ) -> None:
        mesh.resync()
        mesh.remove("us-west-2")  # pending deletions a bad event must not apply
        before = mesh.snapshot()
        result = mesh.invoke(event)
        assert result["ok"] is False
        assert result["errors"]
        assert mentions in " ".join(e["message"] for e in result["errors"])
        assert mesh.snapshot() == before


# --- scope ----------------------------------------------------------------------------------------


class TestScope:
    def test_a_scoped_resync_only_changes_rules_in_those_regions(self, mesh: Any) -> None:
        result = mesh.resync(regions=["us-east-2"])
        assert result["ok"] is True
        assert result["regions"] == ["us-east-2"]
        assert {c["region"] for c in result["changes"]} == {"us-east-2"}
        rules = mesh.managed_rules()
        assert len(rules["us-east-2"]) == 4
        assert all(not found for region, found in rules.items() if region != "us-east-2")

    def test_a_scoped_resync_leaves_other_regions_as_they_are(self, mesh: Any) -> None:
        mesh.resync()
        add_inbound_ip(mesh, "us-east-1", SPARE_IP["us-east-1"])
        west_before = mesh.snapshot(["us-west-2", "us-east-1"])

        result = mesh.resync(regions=["us-east-2"])

        assert result["counts"] == {**NO_CHANGES, "update_rule": 2}
        east2 = mesh.observe("us-east-2")
        for domain in domains_of(mesh.items["us-east-1"]):
            (rule,) = east2.rules_for(domain)
            assert (SPARE_IP["us-east-1"], 53) in targets_of(rule)
        assert mesh.snapshot(["us-west-2", "us-east-1"]) == west_before
        mesh.resync()
        mesh.assert_converged()

    def test_a_scoped_plan_lists_only_that_region(self, mesh: Any) -> None:
        plan = mesh.plan(regions=["us-west-2"])
        assert plan["regions"] == ["us-west-2"]
        assert {c["region"] for c in plan["changes"]} == {"us-west-2"}
        assert plan["counts"]["create_rule"] == 4
        assert plan["calls"]["writes"] == 0


# --- hubs leaving ---------------------------------------------------------------------------------


class TestHubLeaves:
    @pytest.mark.parametrize("how", ["removed", "disabled"])
    def test_every_managed_rule_for_its_domains_and_in_its_region_goes(
        self, make_mesh: Any, how: str
    ) -> None:
        mesh = make_mesh(FOUR_REGIONS)
        mesh.resync()
        assert sum(len(r) for r in mesh.managed_rules().values()) == 24
        leaving = mesh.hubs["eu-west-1"]
        assert leaving.outbound_endpoint_id is not None
        theirs_in_leaving = create_unmanaged_rule(
            mesh.aws,
            "eu-west-1",
            "corp.example",
            leaving.outbound_endpoint_id,
            "10.200.0.10",
            vpc_id=leaving.vpc_id,
        )
        theirs_for_leaving_domain = create_unmanaged_rule(
            mesh.aws,
            "us-east-1",
            "eu-west-1.amazonaws.com",
            str(mesh.hubs["us-east-1"].outbound_endpoint_id),
            "10.200.0.11",
        )
        kept = {
            "eu-west-1": unmanaged_state(mesh, "eu-west-1", theirs_in_leaving),
            "us-east-1": unmanaged_state(mesh, "us-east-1", theirs_for_leaving_domain),
        }

        if how == "removed":
            mesh.remove("eu-west-1")
        else:
            mesh.update("eu-west-1", enabled=False)
        result = mesh.resync()

        assert result["ok"] is True, (result["refused"], result["errors"])
        # 3 Regions x 2 eu-west-1 domains, and eu-west-1's own 3 peers x 2 domains.
        assert result["counts"]["delete_rule"] == 12
        assert result["counts"]["create_rule"] == 0
        leaving_domains = {"eu-west-1.amazonaws.com.", "eu-west-1.vpce.amazonaws.com."}
        for region in MESH_REGIONS:
            seen = mesh.observe(region)
            assert not seen.orphans()
            assert not {normalise(r["DomainName"]) for r in seen.managed()} & leaving_domains
        assert mesh.observe("eu-west-1").managed() == []
        mesh.assert_converged()
        for region, rule_id in (
            ("eu-west-1", theirs_in_leaving),
            ("us-east-1", theirs_for_leaving_domain),
        ):
            assert unmanaged_state(mesh, region, rule_id) == kept[region]
        assert mesh.resync()["calls"]["writes"] == 0

    def test_removing_one_hub_of_three_passes_the_guard(self, mesh: Any) -> None:
        mesh.resync()
        mesh.remove("us-west-2")
        result = mesh.resync()
        assert result["ok"] is True, result["refused"]
        assert result["counts"]["delete_rule"] == 8  # 2 x 2 targeting it, 2 x 2 in its Region
        mesh.assert_converged()

    def test_removing_two_hubs_of_four_is_refused_unless_forced(self, make_mesh: Any) -> None:
        mesh = make_mesh(FOUR_REGIONS)
        mesh.resync()
        mesh.remove("us-west-2")
        mesh.update("eu-west-1", enabled=False)
        before = mesh.snapshot()

        refused = mesh.resync()

        assert refused["ok"] is False
        assert refused["refused"]
        assert refused["applied"] is False
        assert refused["calls"]["writes"] == 0
        assert refused["counts"]["delete_rule"] == 20  # what would have changed
        assert mesh.snapshot() == before

        # Nor may the change go through one Region at a time: a triggered pass over a Region
        # whose hub stays holds fewer rules (6) than MIN_RULES_FOR_GUARD, and is judged anyway.
        for region in ("us-east-1", "us-east-2"):
            event = json.loads((EVENTS / "cloudtrail-CreateTags.json").read_text())
            event["detail"]["awsRegion"] = region
            for slice_of_it in (mesh.resync(regions=[region]), mesh.invoke(event)):
                assert slice_of_it["regions"] == [region]
                assert slice_of_it["refused"], slice_of_it
                assert "(a pass over some Regions" in slice_of_it["refused"][0]
                assert slice_of_it["calls"]["writes"] == 0
        assert mesh.snapshot() == before

        forced = mesh.resync(force=True)
        assert forced["ok"] is True
        assert forced["forced_past"]
        assert forced["counts"]["delete_rule"] == 20
        mesh.assert_converged()


# --- targets and VPCs -----------------------------------------------------------------------------


class TestInboundIpsChange:
    def test_a_new_inbound_ip_updates_the_same_rules_in_place(self, mesh: Any) -> None:
        mesh.resync()
        before = rule_ids_for(mesh, "us-east-2")
        assert len(before) == 4
        add_inbound_ip(mesh, "us-east-2", SPARE_IP["us-east-2"])

        result = mesh.resync()

        assert result["ok"] is True
        assert result["counts"] == {**NO_CHANGES, "update_rule": 4}
        assert rule_ids_for(mesh, "us-east-2") == before
        found = mesh.assert_converged()
        for key in before:
            assert targets_of(found[key]) == {
                ("10.4.0.10", 53),
                ("10.4.1.10", 53),
                (SPARE_IP["us-east-2"], 53),
            }
        assert mesh.resync()["calls"]["writes"] == 0

    def test_a_removed_inbound_ip_updates_the_same_rules_in_place(self, mesh: Any) -> None:
        mesh.resync()
        before = rule_ids_for(mesh, "us-west-2")
        hub = mesh.hubs["us-west-2"]
        mesh.aws("route53resolver", "us-west-2").disassociate_resolver_endpoint_ip_address(
            ResolverEndpointId=hub.inbound_endpoint_id,
            IpAddress={"SubnetId": hub.subnet_ids[1], "Ip": "10.12.1.10"},
        )

        result = mesh.resync()

        assert result["counts"] == {**NO_CHANGES, "update_rule": 4}
        assert rule_ids_for(mesh, "us-west-2") == before
        found = mesh.assert_converged()
        assert {frozenset(targets_of(found[key])) for key in before} == {
            frozenset({("10.12.0.10", 53)})
        }


class TestVpcIdsChange:
    def test_associations_follow_added_and_removed_vpcs(self, mesh: Any) -> None:
        mesh.resync()
        ec2 = mesh.aws("ec2", "us-east-1")
        extra = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
        workload = mesh.hubs["us-east-1"].workload_vpc_ids[0]
        ids_before = {r["Id"] for r in mesh.observe("us-east-1").managed()}

        added = mesh.update("us-east-1", vpc_ids=[workload, extra])
        result = mesh.resync()
        assert result["counts"] == {**NO_CHANGES, "associate": 4}
        assert {c["vpc_id"] for c in result["changes"]} == {extra}
        mesh.assert_converged()
        assert added["vpc_ids"] == [workload, extra]

        mesh.update("us-east-1", vpc_ids=[extra])
        result = mesh.resync()
        assert result["counts"] == {**NO_CHANGES, "disassociate": 4}
        seen = mesh.observe("us-east-1")
        assert {r["Id"] for r in seen.managed()} == ids_before
        assert all(workload not in seen.vpcs_of(rule_id) for rule_id in ids_before)
        mesh.assert_converged()

        mesh.update("us-east-1", vpc_ids=None)
        result = mesh.resync()
        assert result["counts"] == {**NO_CHANGES, "disassociate": 4}
        assert all(
            mesh.observe("us-east-1").vpcs_of(r) == {mesh.hubs["us-east-1"].vpc_id}
            for r in ids_before
        )

    def test_vpc_ids_of_another_region(self, mesh: Any) -> None:
        mesh.resync()
        workload = mesh.aws("ec2", "us-west-2").create_vpc(CidrBlock="10.13.0.0/16")["Vpc"]["VpcId"]
        mesh.update("us-west-2", vpc_ids=[workload])
        result = mesh.resync()
        assert result["counts"] == {**NO_CHANGES, "associate": 4}
        assert {c["region"] for c in result["changes"]} == {"us-west-2"}
        mesh.assert_converged()


# --- peers, outbound, domains ---------------------------------------------------------------------


class TestHubShape:
    def test_peers_restrict_what_a_region_forwards(self, make_mesh: Any) -> None:
        mesh = make_mesh(items={"us-east-1": {"peers": ["us-east-2"]}})
        result = mesh.resync()
        assert result["ok"] is True
        found = mesh.assert_converged()
        assert {d for r, d in found if r == "us-east-1"} == {
            "us-east-2.amazonaws.com.",
            "us-east-2.vpce.amazonaws.com.",
        }
        assert {d for r, d in found if r == "us-west-2"} == {
            "us-east-1.amazonaws.com.",
            "us-east-1.vpce.amazonaws.com.",
            "us-east-2.amazonaws.com.",
            "us-east-2.vpce.amazonaws.com.",
        }

    def test_restricting_and_widening_peers_of_a_running_mesh(self, mesh: Any) -> None:
        mesh.resync()
        mesh.update("us-west-2", peers=["us-east-1"])
        result = mesh.resync()
        assert result["counts"]["delete_rule"] == 2
        assert {c["region"] for c in result["changes"]} == {"us-west-2"}
        assert {normalise(r["DomainName"]) for r in mesh.observe("us-west-2").managed()} == {
            "us-east-1.amazonaws.com.",
            "us-east-1.vpce.amazonaws.com.",
        }
        mesh.assert_converged()

        mesh.update("us-west-2", peers=None)
        assert mesh.resync()["counts"]["create_rule"] == 2
        mesh.assert_converged()

    def test_a_hub_without_outbound_endpoint_gets_no_rules_but_is_forwarded_to(
        self, make_mesh: Any
    ) -> None:
        mesh = make_mesh(outbound=("us-east-1", "us-east-2"))
        assert "outbound_endpoint_id" not in mesh.items["us-west-2"]
        result = mesh.resync()
        assert result["ok"] is True
        found = mesh.assert_converged()
        assert mesh.observe("us-west-2").managed() == []
        for region in ("us-east-1", "us-east-2"):
            assert (region, "us-west-2.amazonaws.com.") in found
            assert (region, "us-west-2.vpce.amazonaws.com.") in found
        assert len(found) == 8

    def test_custom_domain_templates(self, make_mesh: Any) -> None:
        mesh = make_mesh(
            items={"us-east-2": {"domains": ["{region}.Example.Internal.", "shared.corp.example"]}}
        )
        assert mesh.resync()["ok"] is True
        found = mesh.assert_converged()
        for region in ("us-east-1", "us-west-2"):
            assert (region, "us-east-2.example.internal.") in found
            assert (region, "shared.corp.example.") in found
            assert mesh.observe(region).rules_for("us-east-2.amazonaws.com") == []
            assert "." not in found[region, "us-east-2.example.internal."]["Name"]
        assert mesh.resync()["calls"]["writes"] == 0  # case and trailing dot: no false difference

    def test_changing_domains_replaces_the_rules(self, mesh: Any) -> None:
        mesh.resync()
        mesh.update("us-east-2", domains=["{region}.vpce.amazonaws.com", "{region}.corp.example"])
        result = mesh.resync()
        assert result["ok"] is True
        assert result["counts"]["delete_rule"] == 2
        assert result["counts"]["create_rule"] == 2
        found = mesh.assert_converged()
        assert ("us-east-1", "us-east-2.corp.example.") in found
        assert ("us-east-1", "us-east-2.amazonaws.com.") not in found


# --- ownership ------------------------------------------------------------------------------------


class TestUnmanagedRules:
    def test_a_rule_we_do_not_own_in_our_vpc_is_a_conflict_and_is_left_alone(
        self, mesh: Any
    ) -> None:
        hub = mesh.hubs["us-east-1"]
        theirs = create_unmanaged_rule(
            mesh.aws,
            "us-east-1",
            "us-east-2.amazonaws.com",
            str(hub.outbound_endpoint_id),
            "10.200.0.10",
            vpc_id=hub.vpc_id,
        )
        before = unmanaged_state(mesh, "us-east-1", theirs)

        result = mesh.resync()

        assert result["ok"] is False
        assert len(result["conflicts"]) == 1
        conflict = result["conflicts"][0]
        assert conflict["region"] == "us-east-1"
        assert conflict["vpc_id"] == hub.vpc_id
        assert conflict["their_rule_id"] == theirs
        assert normalise(conflict["domain"]) == "us-east-2.amazonaws.com."
        assert theirs in conflict["message"]
        assert unmanaged_state(mesh, "us-east-1", theirs) == before

        (ours,) = mesh.observe("us-east-1").managed_rules_for("us-east-2.amazonaws.com")
        assert conflict["our_rule_id"] in (None, ours["Id"])  # None: created by this run
        assert mesh.observe("us-east-1").vpcs_of(ours["Id"]) == set(hub.workload_vpc_ids)
        # everything else converges
        for region in ("us-east-2", "us-west-2"):
            assert len(mesh.observe(region).managed()) == 4

        again = mesh.resync()
        assert again["ok"] is False
        assert len(again["conflicts"]) == 1
        assert again["conflicts"][0]["our_rule_id"] == ours["Id"]
        assert again["conflicts"][0]["their_rule_id"] == theirs
        assert again["calls"]["writes"] == 0
        assert unmanaged_state(mesh, "us-east-1", theirs) == before

    def test_a_rule_we_do_not_own_for_a_domain_we_manage_is_never_touched(self, mesh: Any) -> None:
        hub = mesh.hubs["us-west-2"]
        theirs = create_unmanaged_rule(
            mesh.aws,
            "us-west-2",
            "us-east-1.amazonaws.com.",
            str(hub.outbound_endpoint_id),
            "10.9.9.9",
        )
        before = unmanaged_state(mesh, "us-west-2", theirs)
        assert mesh.resync()["ok"] is True
        mesh.assert_converged()
        assert unmanaged_state(mesh, "us-west-2", theirs) == before
        mesh.remove("us-east-1")
        assert mesh.resync(force=True)["ok"] is True
        assert unmanaged_state(mesh, "us-west-2", theirs) == before
        mesh.assert_converged()

    def test_look_alike_rules_are_not_ours(self, mesh: Any) -> None:
        """Owner tag, our name, or a marker of a mesh whose id extends ours: still not ours."""
        resolver = mesh.aws("route53resolver", "us-east-1")
        hub = mesh.hubs["us-east-1"]
        look_alikes = []
        for marker, tags in (
            (
                "someone-else/us-east-2/1",
                [{"Key": "resolver-mesh:owner", "Value": "resolver-mesh"}],
            ),
            ("resolver-mesh/resolver-mesh-2/us-east-2/1", []),
            ("resolver-mesh-resolver-mesh/us-east-2/1", []),
        ):
            rule_id = resolver.create_resolver_rule(
                CreatorRequestId=marker,
                Name="resolver-mesh-us-east-2-amazonaws-com",
                RuleType="FORWARD",
                DomainName="us-east-2.amazonaws.com",
                TargetIps=[{"Ip": "10.9.9.9", "Port": 53}],
                ResolverEndpointId=hub.outbound_endpoint_id,
                Tags=tags,
            )["ResolverRule"]["Id"]
            look_alikes.append(rule_id)
        before = [unmanaged_state(mesh, "us-east-1", r) for r in look_alikes]

        mesh.resync()
        mesh.remove("us-east-2")
        mesh.resync(force=True)

        assert [unmanaged_state(mesh, "us-east-1", r) for r in look_alikes] == before
        mesh.assert_converged()


class TestTwoMeshes:
    @pytest.mark.parametrize(("id_a", "id_b"), [("a", "b"), ("a", "a-b")])
    def test_meshes_never_touch_each_others_rules(
        self, make_mesh: Any, id_a: str, id_b: str
    ) -> None:
        custom = {"domains": ["{region}.b.example"]}
        mesh_b = make_mesh(
            table="hubs-b",
            mesh_id=id_b,
            items=dict.fromkeys(("us-east-1", "us-east-2", "us-west-2"), custom),
        )
        assert mesh_b.resync()["ok"] is True
        b_before = mesh_b.snapshot()  # mesh a adds its rules, then removes them all
        mesh_a = make_mesh(table="hubs-a", mesh_id=id_a, hubs=mesh_b.hubs)
        assert mesh_a.resync()["ok"] is True
        mesh_a.assert_converged()
        found_b = mesh_b.assert_converged()
        assert len(found_b) == 6

        for region in list(mesh_a.items):
            mesh_a.remove(region)
        refused = mesh_a.resync()
        assert refused["refused"]  # it would remove every managed rule of mesh a
        assert refused["calls"]["writes"] == 0
        cleanup = mesh_a.resync(force=True)

        assert cleanup["ok"] is True
        assert cleanup["counts"]["delete_rule"] == 12
        assert all(
            c["rule_id"] not in {r["Id"] for r in found_b.values()} for c in cleanup["changes"]
        )
        assert all(not rules for rules in mesh_a.managed_rules().values())
        assert mesh_b.snapshot() == b_before
        mesh_b.assert_converged()
        assert mesh_b.resync()["calls"]["writes"] == 0
        for region in ("us-east-1", "us-east-2", "us-west-2"):
            resolver = mesh_b.aws("route53resolver", region)
            for rule in mesh_b.observe(region).managed(id_b):
                tags = resolver.list_tags_for_resource(ResourceArn=rule["Arn"])["Tags"]
                assert {"Key": "resolver-mesh:owner", "Value": id_b} in tags

    def test_a_mesh_reports_the_other_meshs_rules_as_conflicts(self, make_mesh: Any) -> None:
        mesh_b = make_mesh(table="hubs-b", mesh_id="b")
        mesh_b.resync()
        b_before = mesh_b.snapshot()
        mesh_a = make_mesh(table="hubs-a", mesh_id="a", hubs=mesh_b.hubs)

        result = mesh_a.resync()

        assert result["ok"] is False
        assert len(result["conflicts"]) == 16  # every association mesh a wants is held by b
        b_ids = {r["Id"] for rules in mesh_b.managed_rules().values() for r in rules}
        assert {c["their_rule_id"] for c in result["conflicts"]} <= b_ids
        touched = {c.get("rule_id") for c in result["changes"]}
        assert not touched & b_ids
        b_now = mesh_b.snapshot()
        for region in MESH_REGIONS:
            # b's rules and associations are exactly as they were (a only added its own rules)
            b_rules = {r[0] for r in b_before[region][0]}
            assert [r for r in b_now[region][0] if r[0] in b_rules] == b_before[region][0]
            assert b_now[region][1] == b_before[region][1]


# --- bad input and failures -----------------------------------------------------------------------


class TestBadHubItem:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("vpc_id", "vpc-XYZ"),
            ("inbound_endpoint_id", "rslvr-out-0123456789abcdef0"),
            ("inbound_endpoint_id", "rslvr-in-0123456789abcdef0"),  # well-formed, not there
            ("outbound_endpoint_id", "rslvr-in-0123456789abcdef0"),
            ("domains", ["{region}..example"]),
            ("peers", ["ap-southeast-2"]),
            ("enabled", "false"),
            ("vpcids", ["vpc-0123456789abcdef0"]),
        ],
    )
    def test_is_reported_and_rules_targeting_it_are_kept(
        self, mesh: Any, field: str, value: Any
    ) -> None:
        mesh.resync()
        kept = rule_ids_for(mesh, "us-west-2")
        west = mesh.snapshot(["us-west-2"])
        kept_rules = {key: mesh.observe(key[0]).rule(rule_id) for key, rule_id in kept.items()}
        assert len(kept) == 4
        bad = {**mesh.items["us-west-2"], field: value}
        mesh.put(bad)
        mesh.update("us-east-1", vpc_ids=None)  # the other hubs still converge

        result = mesh.resync()

        assert result["ok"] is False
        item_errors = [e for e in result["errors"] if e["kind"] == "hub_item"]
        assert item_errors, result["errors"]
        assert all(e["region"] == "us-west-2" for e in item_errors)
        assert field in {e["field"] for e in item_errors}
        assert all("us-west-2" in e["message"] for e in item_errors)
        assert rule_ids_for(mesh, "us-west-2", {d for _, d in kept}) == kept
        for (region, _), rule in kept_rules.items():
            now = mesh.observe(region)
            assert now.rule(rule["Id"]) == rule
        assert mesh.snapshot(["us-west-2"]) == west
        # us-east-1's own change (its workload VPC dropped) applies to all its rules: those
        # for the good hub us-east-2, and those kept for the bad hub, whose targets and
        # existence stay as they are while their associations follow vpc_ids.
        east1 = mesh.observe("us-east-1")
        workload = mesh.hubs["us-east-1"].workload_vpc_ids[0]
        assert result["counts"] == {**NO_CHANGES, "disassociate": 4}
        for domain in domains_of(mesh.items["us-east-2"]):
            (rule,) = east1.managed_rules_for(domain)
            assert east1.vpcs_of(rule["Id"]) == {mesh.hubs["us-east-1"].vpc_id}
        for key, rule_id in kept.items():
            if key[0] == "us-east-1":
                assert workload not in east1.vpcs_of(rule_id)
                assert east1.vpcs_of(rule_id) == {mesh.hubs["us-east-1"].vpc_id}
        # us-east-1 and us-east-2 still forward to each other as the contract says
        for source, target in (("us-east-1", "us-east-2"), ("us-east-2", "us-east-1")):
            for domain in domains_of(mesh.items[target]):
                (rule,) = mesh.observe(source).managed_rules_for(domain)
                assert targets_of(rule) == set(mesh.inbound_ips(target))

    def test_a_bad_item_on_a_new_mesh_lets_the_others_converge(self, mesh: Any) -> None:
        mesh.update("us-west-2", vpc_id="not-a-vpc")
        result = mesh.resync()
        assert result["ok"] is False
        assert {(e["region"], e.get("field")) for e in result["errors"]} == {
            ("us-west-2", "vpc_id")
        }
        rules = mesh.managed_rules()
        assert rules["us-west-2"] == []
        assert {normalise(r["DomainName"]) for r in rules["us-east-1"]} == domains_of(
            mesh.items["us-east-2"]
        )
        assert {normalise(r["DomainName"]) for r in rules["us-east-2"]} == domains_of(
            mesh.items["us-east-1"]
        )


class TestTableUnreadable:
    @pytest.mark.parametrize("event", [{"action": "resync"}, {"action": "resync", "force": True}])
    def test_a_missing_table_is_an_error_and_nothing_changes(
        self, mesh: Any, event: dict[str, Any]
    ) -> None:
        mesh.resync()
        before = mesh.snapshot()
        mesh.table = "no-such-table"

        result = mesh.invoke(event)

        assert result["ok"] is False
        assert result["calls"]["writes"] == 0
        assert result["changes"] == []
        assert any("no-such-table" in e["message"] for e in result["errors"])
        assert mesh.snapshot() == before
        assert sum(len(r) for r in mesh.managed_rules().values()) == 12

    def test_an_empty_table_deletes_nothing_without_force(self, mesh: Any) -> None:
        mesh.resync()
        before = mesh.snapshot()
        for region in list(mesh.items):
            mesh.remove(region)
        result = mesh.resync()
        assert result["ok"] is False
        assert result["refused"]
        assert result["calls"]["writes"] == 0
        assert mesh.snapshot() == before


def test_every_kind_of_result_is_json_serialisable(mesh: Any) -> None:
    """`Mesh.invoke` round-trips each result through JSON; here the awkward ones."""
    hub = mesh.hubs["us-east-1"]
    create_unmanaged_rule(
        mesh.aws,
        "us-east-1",
        "us-east-2.vpce.amazonaws.com",
        str(hub.outbound_endpoint_id),
        "10.200.0.10",
        vpc_id=hub.vpc_id,
    )
    results = [mesh.plan(), mesh.resync()]
    mesh.update("us-east-2", vpc_id="vpc-bad")
    mesh.remove("us-west-2")
    results += [mesh.resync(), mesh.invoke({"action": "nope"}), mesh.invoke("not even a dict")]
    for result in results:
        text = json.dumps(result)
        assert json.loads(text)["ok"] is result["ok"]
    assert [r["ok"] for r in results[:4]] == [False, False, False, False]


# --- drift, outbound endpoints, the swept Regions -------------------------------------------------


class TestDriftAndEndpoints:
    def test_drift_of_managed_rules_is_repaired_in_place(self, mesh: Any) -> None:
        mesh.resync()
        resolver = mesh.aws("route53resolver", "us-east-1")
        hub = mesh.hubs["us-east-1"]
        tampered, unhooked, deleted = sorted(
            mesh.observe("us-east-1").managed(), key=lambda r: r["DomainName"]
        )[:3]
        resolver.update_resolver_rule(
            ResolverRuleId=tampered["Id"],
            Config={"Name": "tampered", "TargetIps": [{"Ip": "10.99.0.1", "Port": 53}]},
        )
        resolver.disassociate_resolver_rule(ResolverRuleId=unhooked["Id"], VPCId=hub.vpc_id)
        for vpc_id in (hub.vpc_id, *hub.workload_vpc_ids):
            resolver.disassociate_resolver_rule(ResolverRuleId=deleted["Id"], VPCId=vpc_id)
        resolver.delete_resolver_rule(ResolverRuleId=deleted["Id"])
        duplicate = resolver.create_resolver_rule(
            CreatorRequestId=f"resolver-mesh/resolver-mesh/us-east-2/{'0' * 32}",
            Name="left-by-a-crash",
            RuleType="FORWARD",
            DomainName=tampered["DomainName"],
            TargetIps=[{"Ip": "10.4.0.10", "Port": 53}],
            ResolverEndpointId=hub.outbound_endpoint_id,
        )["ResolverRule"]["Id"]

        result = mesh.resync()

        assert result["ok"] is True
        assert result["counts"] == {
            "adopt_rule": 0,
            "create_rule": 1,
            "update_rule": 1,
            "associate": 3,  # the unhooked VPC, the re-created rule's two VPCs
            "disassociate": 0,
            "delete_rule": 1,  # the duplicate
        }
        found = mesh.assert_converged()
        assert found["us-east-1", normalise(tampered["DomainName"])]["Id"] == tampered["Id"]
        assert found["us-east-1", normalise(unhooked["DomainName"])]["Id"] == unhooked["Id"]
        assert duplicate not in {r["Id"] for r in mesh.observe("us-east-1").rules}

    def test_a_new_outbound_endpoint_is_written_into_the_same_rules(self, mesh: Any) -> None:
        mesh.resync()
        hub = mesh.hubs["us-east-2"]
        resolver = mesh.aws("route53resolver", "us-east-2")
        groups = resolver.get_resolver_endpoint(ResolverEndpointId=hub.inbound_endpoint_id)[
            "ResolverEndpoint"
        ]["SecurityGroupIds"]
        replacement = resolver.create_resolver_endpoint(
            CreatorRequestId="replacement-outbound",
            Name="replacement-outbound",
            SecurityGroupIds=groups,
            Direction="OUTBOUND",
            IpAddresses=[{"SubnetId": subnet} for subnet in hub.subnet_ids],
        )["ResolverEndpoint"]["Id"]
        before = {r["Id"] for r in mesh.observe("us-east-2").managed()}

        mesh.update("us-east-2", outbound_endpoint_id=replacement)
        result = mesh.resync()

        assert result["counts"] == {**NO_CHANGES, "update_rule": 4}
        rules = mesh.observe("us-east-2").managed()
        assert {r["Id"] for r in rules} == before
        assert {r["ResolverEndpointId"] for r in rules} == {replacement}
        mesh.assert_converged()
        resolver.delete_resolver_endpoint(ResolverEndpointId=str(hub.outbound_endpoint_id))

    def test_string_sets_empty_peers_and_long_domains(self, make_mesh: Any) -> None:
        long_domain = "a-label-long-enough-to-overflow-a-rule-name.{region}.internal.example.com"
        mesh = make_mesh(
            items={"us-west-2": {"peers": []}, "us-east-2": {"domains": [long_domain]}}
        )
        hub = mesh.hubs["us-east-1"]
        mesh.update("us-east-1", vpc_ids=set(hub.workload_vpc_ids))  # a DynamoDB string set

        assert mesh.resync()["ok"] is True

        found = mesh.assert_converged()
        assert mesh.observe("us-west-2").managed() == []  # peers [] forwards nowhere
        assert ("us-west-2", "us-east-1.amazonaws.com.") not in found
        assert ("us-east-2", "us-west-2.amazonaws.com.") in found  # but others forward to it
        long_rule = found["us-east-1", normalise(long_domain.replace("{region}", "us-east-2"))]
        assert len(long_rule["Name"]) <= 64
        assert "." not in long_rule["Name"]
        assert mesh.resync()["calls"]["writes"] == 0


class TestSweptRegions:
    def test_a_full_resync_without_mesh_regions_sweeps_every_enabled_region(
        self, make_mesh: Any
    ) -> None:
        mesh = make_mesh(("us-east-1", "us-east-2", "ca-central-1"))
        mesh.mesh_regions = ()
        result = mesh.resync()
        assert result["ok"] is True
        assert {"us-east-1", "us-east-2", "ca-central-1", "eu-north-1"} <= set(result["regions"])
        mesh.assert_converged()

        mesh.remove("ca-central-1")
        result = mesh.resync()
        assert result["ok"] is True, result["refused"]
        assert mesh.observe("ca-central-1").managed() == []
        assert not mesh.observe("ca-central-1").orphans()
        mesh.assert_converged()

    def test_a_removed_hub_outside_mesh_regions_leaves_no_managed_rule_behind(
        self, make_mesh: Any
    ) -> None:
        """Contract: a removed hub's own Region loses its managed rules; nothing is orphaned.

        ca-central-1 is not in MESH_REGIONS: it is reconciled while its item exists, so its
        rules must also go when the item is deleted.
        """
        mesh = make_mesh((*FOUR_REGIONS, "ca-central-1"))
        assert "ca-central-1" not in MESH_REGIONS
        assert mesh.resync()["ok"] is True
        assert len(mesh.observe("ca-central-1").managed()) == 8

        mesh.remove("ca-central-1")
        result = mesh.resync()

        assert result["ok"] is True
        left = mesh.observe("ca-central-1").managed()
        assert left == [], f"{len(left)} managed rules orphaned in ca-central-1"
