"""The CLI while it runs, as a person sees it: Ctrl-C, a missing table, failed calls, an endpoint
that lacks an API or is gone, and `resolver-mesh emulator`. Subprocesses against servers on
127.0.0.1 only: the session's emulator, a plain moto server, or no server at all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from meshkit import HOME_REGION, VENV_BIN, Mesh, normalise

from mesh_emulator.faults import injected_faults
from mesh_emulator.server import LocalEmulator, emulator_environment
from resolver_mesh.aws.calls import CONNECT_ATTEMPTS
from resolver_mesh.local.topology import CachedClients, build_hub, create_hubs_table, hub_item

SCRIPT = str(VENV_BIN / "resolver-mesh")
PATIENCE = 120.0  # seconds a condition may take on a loaded machine before the test gives up


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    """Poll `condition` until it returns something true (a safety net, not a timing check)."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def local_env(endpoint_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment that can reach nothing but `endpoint_url` (no profile, no config)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **base,
        **emulator_environment(endpoint_url),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        **extra,
    }


def start(*args: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SCRIPT, *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(*args: str, env: Mapping[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [SCRIPT, *args], env=dict(env), capture_output=True, text=True, timeout=PATIENCE
    )
    return done.returncode, done.stdout, done.stderr


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=PATIENCE)
    return process.returncode, out, err


def closed_port() -> socket.socket:
    """A socket bound to a port of 127.0.0.1 that does not listen: connecting is refused."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    return held


@contextmanager
def plain_moto_server(tmp_path: Path) -> Iterator[str]:
    """`python -m moto.server` in a process of its own: moto without this project's extensions
    (they patch moto in-process, so a server in the test process would have them)."""
    with closed_port() as probe:
        port = probe.getsockname()[1]
    log = (tmp_path / "moto.log").open("w")
    server = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            with socket.socket() as client:
                return client.connect_ex(("127.0.0.1", port)) == 0

        wait_until(answers, f"the plain moto server on {url}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=PATIENCE)
        log.close()


def changes_of(report: Mapping[str, Any], status: str) -> list[dict[str, Any]]:
    return [c for c in report["changes"] if c["status"] == status]


def assert_state_is_what_was_applied(mesh: Mesh, report: Mapping[str, Any]) -> None:
    """Rules and associations exist exactly for the changes reported as applied."""
    made = {
        (c["region"], normalise(c["domain"]))
        for c in changes_of(report, "applied")
        if c["kind"] == "create_rule"
    }
    associated = {
        (c["region"], normalise(c["domain"]), c["vpc_id"])
        for c in changes_of(report, "applied")
        if c["kind"] == "associate"
    }
    found: set[tuple[str, str]] = set()
    linked: set[tuple[str, str, str]] = set()
    for region, rules in mesh.managed_rules().items():
        seen = mesh.observe(region)
        for rule in rules:
            found.add((region, normalise(rule["DomainName"])))
            linked |= {(region, normalise(rule["DomainName"]), v) for v in seen.vpcs_of(rule["Id"])}
    assert found == made
    assert linked == associated


class TestCtrlC:
    def test_apply_stops_starting_calls_and_reports_what_was_done(self, mesh: Mesh) -> None:
        env = {**os.environ, **mesh.env(), "CALLS_PER_SECOND": "2"}
        process = start("apply", "--json", env=env)
        wait_until(lambda: any(mesh.managed_rules().values()), "the first rule of the apply")
        process.send_signal(signal.SIGINT)
        code, out, err = finish(process)

        assert code == 130, err
        assert "Traceback" not in err
        assert "stopping: no new calls" in err
        report = json.loads(out)
        assert report["interrupted"] is True
        assert report["ok"] is False
        assert changes_of(report, "applied"), "the calls made before Ctrl-C are reported"
        assert changes_of(report, "not started"), "Ctrl-C came too late to test anything"
        assert {c["status"] for c in report["changes"]} == {"applied", "not started"}
        assert report["calls"]["writes"] == len(changes_of(report, "applied"))
        assert_state_is_what_was_applied(mesh, report)

        again = mesh.cli("apply", "--json")  # the rest is made by the next apply
        assert again.code == 0, again.out
        mesh.assert_converged()

    def test_plan_exits_130_without_a_traceback(self, mesh: Mesh, emulator: LocalEmulator) -> None:
        env = {**os.environ, **mesh.env(), "CALLS_PER_SECOND": "1"}
        with injected_faults(emulator, 0.0) as counter:  # faults at rate 0: counts the requests
            process = start("plan", env=env)
            wait_until(lambda: counter.requests > 0, "the plan's first Resolver call")
            process.send_signal(signal.SIGINT)
            code, out, err = finish(process)
        assert code == 130, err
        assert "Traceback" not in err
        assert "interrupted: the plan may be incomplete" in out
        assert "every Region is in step" not in out
        assert out.splitlines()[-1].startswith("NOT OK:")


class TestMissingTable:
    def test_the_error_names_table_region_and_setting_and_nothing_is_in_step(
        self, make_mesh: Callable[..., Mesh]
    ) -> None:
        mesh = make_mesh(table="team-hubs")
        env = {**os.environ, **mesh.env()}
        del env["HUBS_TABLE_NAME"]  # unset: the default name, which does not exist here
        named = "hubs table 'resolver-mesh-hubs' not found in us-east-1"
        for command in ("plan", "apply"):
            code, out, err = run(command, env=env)
            assert code == 1, err
            assert named in out
            assert "HUBS_TABLE_NAME" in out
            assert "in step" not in out
            assert "nothing planned: the desired state could not be read" in out
        assert out.splitlines()[0].startswith("Nothing applied to mesh resolver-mesh")

        code, out, err = run("hubs", "list", env=env)
        assert code == 1
        assert named in err

        code, out, err = run("apply", "--table", "team-hubs", env=env)
        assert code == 0, err
        assert out.splitlines()[0].startswith("Applied to mesh resolver-mesh in ")

    def test_the_handler_reports_nothing_planned(self, mesh: Mesh) -> None:
        mesh.table = "no-such-table"
        result = mesh.resync()
        assert result["ok"] is False
        assert result["planned"] is False
        assert [e["message"] for e in result["errors"]] == [
            "hubs table 'no-such-table' not found in us-east-1 (ResourceNotFoundException);"
            " set HUBS_TABLE_NAME or --table (and HOME_REGION or --home-region)"
        ]


@contextmanager
def resolver_writes_failing(emulator: LocalEmulator) -> Iterator[None]:
    """Every Route 53 Resolver write answers HTTP 500 InternalServiceErrorException."""

    def wrap(app: Any) -> Any:
        def failing(environ: dict[str, Any], start_response: Any) -> Any:
            target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            service, _, operation = target.partition(".")
            if service == "Route53Resolver" and not operation.startswith(("List", "Get")):
                body = json.dumps({"__type": "InternalServiceErrorException", "message": "test"})
                start_response(
                    "500 Internal Server Error",
                    [
                        ("Content-Type", "application/x-amz-json-1.1"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body.encode()]
            return app(environ, start_response)

        return failing

    with emulator.wrapped(wrap):
        yield


def test_failed_writes_are_counted_apart_from_writes(
    mesh: Mesh, emulator: LocalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_ATTEMPTS", "2")
    with resolver_writes_failing(emulator):
        as_json = mesh.cli("apply", "--json")
        text = mesh.cli("apply")
    assert as_json.code == text.code == 1
    # 12 creates, each attempted twice; the 16 associations wait for rules never created
    assert as_json.json["calls"]["writes"] == 0
    assert as_json.json["calls"]["failed_writes"] == 24
    assert as_json.json["calls"]["failed_reads"] == 0
    assert " 0 writes, 24 failed writes in " in text.out.splitlines()[-1]
    assert mesh.managed_rules() == {region: [] for region in mesh.managed_rules()}


def test_an_endpoint_without_update_resolver_rule_is_named_in_one_line(tmp_path: Path) -> None:
    with plain_moto_server(tmp_path) as url:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        aws = CachedClients(session, url)
        hubs = {
            r: build_hub(aws, r, workload_vpcs=int(r == HOME_REGION))
            for r in ("us-east-1", "us-east-2")
        }
        create_hubs_table(aws, HOME_REGION, "hubs")
        for hub in hubs.values():
            item = {
                k: {"S": v} if isinstance(v, str) else {"SS": v} for k, v in hub_item(hub).items()
            }
            aws("dynamodb", HOME_REGION).put_item(TableName="hubs", Item=item)
        env = local_env(url, tmp_path, HUBS_TABLE_NAME="hubs", MESH_REGIONS="us-east-1,us-east-2")
        code, out, err = run("apply", env=env)
        assert code == 0, out + err  # creating and associating rules works on plain moto

        hub = hubs["us-east-1"]  # a new inbound IP: us-east-2's 2 rules to us-east-1 change
        aws("route53resolver", "us-east-1").associate_resolver_endpoint_ip_address(
            ResolverEndpointId=hub.inbound_endpoint_id,
            IpAddress={"SubnetId": hub.subnet_ids[1], "Ip": "10.0.1.99"},
        )
        code, out, err = run("apply", env=env)
        aws.close()
    assert code == 1
    said = f"the endpoint {url} does not implement route53resolver UpdateResolverRule"
    updates = [line for line in out.splitlines() if "update rule" in line]
    assert len(updates) == 2, out
    assert all(said in line for line in updates), out
    assert "use `resolver-mesh emulator`" in out
    assert "<html" not in out.lower()
    assert "<html" not in err.lower()
    # no retries; plain moto has no Route 53 Profiles either: a note where no hub delivers
    # through a Profile (one failed ListProfiles per hub Region), the rules still reconciled
    assert " 0 writes, 2 failed reads, 2 failed writes in " in out.splitlines()[-1]
    assert "cannot read Route 53 Profiles" in out


def test_a_refused_connection_gives_up_after_few_attempts(tmp_path: Path) -> None:
    with closed_port() as held:
        url = f"http://127.0.0.1:{held.getsockname()[1]}"
        env = local_env(url, tmp_path, MESH_REGIONS="us-east-1")
        code, out, err = run("plan", "--json", env=env)
        text_code, text, _ = run("plan", env=env)
    assert code == text_code == 1, err
    report = json.loads(out)
    assert report["calls"] == {
        "reads": 0,
        "writes": 0,
        "failed_reads": CONNECT_ATTEMPTS,
        "failed_writes": 0,
    }
    assert CONNECT_ATTEMPTS <= 2
    assert report["planned"] is False
    [error] = report["errors"]
    assert url in error["message"]
    assert "resolver-mesh-hubs" in error["message"]
    assert "in step" not in text
    assert sum(url in line for line in text.splitlines()) == 1


class TestEmulatorCommand:
    def test_serves_update_resolver_rule_until_ctrl_c(self, tmp_path: Path) -> None:
        process = start("emulator", env=local_env("http://127.0.0.1:1", tmp_path))
        assert process.stdout is not None
        first, exports = process.stdout.readline(), process.stdout.readline()
        url = first.split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert exports.startswith(f"export AWS_ENDPOINT_URL={url} ")
        assert "AWS_REGION=us-east-1" in exports.split()

        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        aws = CachedClients(session, url)
        hub = build_hub(aws, "us-east-1")
        resolver = aws("route53resolver", "us-east-1")
        rule_id = resolver.create_resolver_rule(
            CreatorRequestId="test",
            Name="before",
            RuleType="FORWARD",
            DomainName="example.internal",
            TargetIps=[{"Ip": "10.9.9.9", "Port": 53}],
            ResolverEndpointId=hub.outbound_endpoint_id,
        )["ResolverRule"]["Id"]
        resolver.update_resolver_rule(
            ResolverRuleId=rule_id,
            Config={"Name": "after", "TargetIps": [{"Ip": "10.9.9.8", "Port": 53}]},
        )
        rule = resolver.get_resolver_rule(ResolverRuleId=rule_id)["ResolverRule"]
        aws.close()
        assert (rule["Name"], rule["TargetIps"][0]["Ip"]) == ("after", "10.9.9.8")

        port = url.rsplit(":", 1)[1]
        busy = run("emulator", "--port", port, env=local_env(url, tmp_path))
        assert busy[0] == 1
        assert f"cannot serve on 127.0.0.1:{port}" in busy[2]

        process.send_signal(signal.SIGINT)
        code, _, err = finish(process)
        assert code == 0
        assert "Traceback" not in err
