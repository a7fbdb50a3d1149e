"""scripts/deploy-forwarders.sh: one forwarder stack per Region of samconfig.toml's MeshRegions.

Nothing here reaches AWS: `--dry-run` only prints, and the real mode runs against stand-in `sam`
and `aws` commands that record their arguments.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from eventkit import ROOT

SCRIPT = ROOT / "scripts" / "deploy-forwarders.sh"


def _config(tmp_path: Path, regions: str, *, mesh_id: str = "mesh-a", region: str = "") -> Path:
    path = tmp_path / "samconfig.toml"
    home = f'region = "{region}"' if region else ""
    path.write_text(
        textwrap.dedent(
            f"""\
            version = 0.1
            [default.global.parameters]
            stack_name = "{mesh_id}-home"
            {home}
            [default.deploy.parameters]
            parameter_overrides = [
              "MeshId={mesh_id}",
              'ResyncRate="rate(15 minutes)"',
              "MeshRegions={regions}",
            ]
            """
        ),
        encoding="utf-8",
    )
    return path


def _run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": os.environ["PATH"],
        "PYTHON": sys.executable,
        "HOME": os.environ.get("HOME", "/tmp"),
        **(env or {}),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=full_env,
        cwd=cwd,
    )


def _deploys(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if " deploy " in line]


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_dry_run_prints_one_sam_deploy_per_region(tmp_path: Path) -> None:
    config = _config(tmp_path, "us-east-2,us-west-2,eu-west-1", region="us-east-1")
    result = _run("--config-file", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr
    deploys = _deploys(result.stdout)
    # The home Region (from the config's region) comes first and gets a forwarder too.
    assert [_flag(c, "--region") for c in deploys] == [
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "eu-west-1",
    ]
    for command in deploys:
        assert command[:2] == ["sam", "deploy"]
        assert _flag(command, "--template-file") == "forwarder.yaml"
        assert _flag(command, "--stack-name") == "mesh-a-forwarder"
        assert _flag(command, "--config-env") == "forwarder"
        start = command.index("--parameter-overrides") + 1
        overrides = command[start : command.index("--tags")]
        assert overrides == [
            "MeshId=mesh-a",
            "CentralBusArn=$CENTRAL_BUS_ARN",
            "ReconcilerRoleArn=$RECONCILER_ROLE_ARN",
        ]
    # The outputs are read from the home stack, in the home Region.
    lookups = [line for line in result.stdout.splitlines() if "describe-stacks" in line]
    assert len(lookups) == 2
    for line in lookups:
        assert "--stack-name mesh-a-home" in line
        assert "--region us-east-1" in line
    assert lookups[0].startswith("CENTRAL_BUS_ARN=$(aws cloudformation describe-stacks")
    assert "OutputKey=='CentralBusArn'" in lookups[0]
    assert "OutputKey=='ReconcilerRoleArn'" in lookups[1]


def test_adding_a_region_is_one_more_deploy(tmp_path: Path) -> None:
    before = _run(
        "--config-file", str(_config(tmp_path, "us-east-1,us-east-2")), "--dry-run",
        env={"AWS_REGION": "us-east-1"},
    )  # fmt: skip
    after = _run(
        "--config-file", str(_config(tmp_path, "us-east-1,us-east-2,ap-southeast-2")), "--dry-run",
        env={"AWS_REGION": "us-east-1"},
    )  # fmt: skip
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    regions_before = [_flag(c, "--region") for c in _deploys(before.stdout)]
    regions_after = [_flag(c, "--region") for c in _deploys(after.stdout)]
    assert regions_before == ["us-east-1", "us-east-2"]  # the home Region is not repeated
    assert regions_after == [*regions_before, "ap-southeast-2"]


def test_dry_run_of_the_repository_prod_environment() -> None:
    result = _run("--config-env", "prod", "--home-region", "us-east-1", "--dry-run")
    assert result.returncode == 0, result.stderr
    deploys = _deploys(result.stdout)
    assert [_flag(c, "--region") for c in deploys] == [
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "eu-west-1",
    ]
    assert {_flag(c, "--stack-name") for c in deploys} == {"resolver-mesh-prod-forwarder"}


def test_every_partitions_region_names_are_accepted(tmp_path: Path) -> None:
    """The script checks MeshRegions with the package's one Region pattern (names.py), which
    takes eusc-de-east-1 and us-isob-east-1 (the script's own pattern refused them)."""
    config = _config(tmp_path, "eusc-de-east-1,eusc-de-east-2", region="eusc-de-east-1")
    result = _run("--config-file", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert [_flag(c, "--region") for c in _deploys(result.stdout)] == [
        "eusc-de-east-1",
        "eusc-de-east-2",
    ]
    config = _config(tmp_path, "us-isob-east-1,us-east-1x", region="us-isob-east-1")
    refused = _run("--config-file", str(config), "--dry-run")
    assert refused.returncode == 2
    assert "not a Region in MeshRegions of [default]: us-east-1x" in refused.stderr


def test_given_arns_are_used_as_they_are(tmp_path: Path) -> None:
    bus = "arn:aws:events:us-east-1:111122223333:event-bus/mesh-a-events"
    role = "arn:aws:iam::111122223333:role/mesh-a-ReconcilerRole-ABC"
    result = _run(
        "--config-file", str(_config(tmp_path, "us-west-2")), "--home-region", "us-east-1",
        "--central-bus-arn", bus, "--reconciler-role-arn", role, "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "describe-stacks" not in result.stdout
    for command in _deploys(result.stdout):
        assert f"CentralBusArn={bus}" in command
        assert f"ReconcilerRoleArn={role}" in command


@pytest.mark.parametrize(
    ("regions", "args", "message"),
    [
        ("", ["--home-region", "us-east-1"], "MeshRegions is empty"),
        ("us-east-1,narnia", ["--home-region", "us-east-1"], "not a Region in MeshRegions"),
        ("us-east-1", [], "home Region is unknown"),
        ("us-east-1", ["--config-env", "staging"], "no [staging.*] environment"),
        ("us-east-1", ["--bogus"], "unknown argument"),
    ],
)
def test_bad_configuration_is_refused(
    tmp_path: Path, regions: str, args: list[str], message: str
) -> None:
    result = _run("--config-file", str(_config(tmp_path, regions)), "--dry-run", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert _deploys(result.stdout) == []


def test_real_mode_reads_the_home_outputs_and_deploys_everywhere(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake_aws = bin_dir / "aws"
    fake_aws.write_text(
        textwrap.dedent(
            f"""\
            #!/usr/bin/env bash
            echo "aws $*" >> {log}
            case "$*" in
              *CentralBusArn*) echo arn:aws:events:eu-west-1:123456789012:event-bus/mesh-a-events ;;
              *ReconcilerRoleArn*) echo arn:aws:iam::123456789012:role/mesh-a-ReconcilerRole-XYZ ;;
            esac
            """
        ),
        encoding="utf-8",
    )
    fake_sam = bin_dir / "sam"
    fake_sam.write_text(f'#!/usr/bin/env bash\necho "sam $*" >> {log}\n', encoding="utf-8")
    fake_aws.chmod(0o755)
    fake_sam.chmod(0o755)
    config = _config(tmp_path, "eu-west-1,eu-central-1", region="eu-west-1")
    result = _run(
        "--config-file",
        str(config),
        env={"SAM": str(fake_sam), "AWS": str(fake_aws)},
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text(encoding="utf-8").splitlines()
    assert [c.split()[0] for c in calls] == ["aws", "aws", "sam", "sam"]
    assert all("--region eu-west-1 --stack-name mesh-a-home" in c for c in calls[:2])
    deploys = [shlex.split(c) for c in calls[2:]]
    assert [_flag(c, "--region") for c in deploys] == ["eu-west-1", "eu-central-1"]
    for command in deploys:
        assert (
            "CentralBusArn=arn:aws:events:eu-west-1:123456789012:event-bus/mesh-a-events" in command
        )
        assert "ReconcilerRoleArn=arn:aws:iam::123456789012:role/mesh-a-ReconcilerRole-XYZ" in (
            command
        )


def test_real_mode_stops_when_the_home_stack_has_no_outputs(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_aws = bin_dir / "aws"
    fake_aws.write_text("#!/usr/bin/env bash\necho None\n", encoding="utf-8")
    fake_aws.chmod(0o755)
    fake_sam = bin_dir / "sam"
    fake_sam.write_text("#!/usr/bin/env bash\nexit 99\n", encoding="utf-8")
    fake_sam.chmod(0o755)
    config = _config(tmp_path, "eu-west-1", region="eu-west-1")
    result = _run("--config-file", str(config), env={"SAM": str(fake_sam), "AWS": str(fake_aws)})
    assert result.returncode == 2
    assert "has no output CentralBusArn" in result.stderr


def test_makefile_target_runs_the_script() -> None:
    result = subprocess.run(
        ["make", "-n", "deploy-forwarders", "CONFIG_ENV=prod"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "scripts/deploy-forwarders.sh --config-env prod" in result.stdout
