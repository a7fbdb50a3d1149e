"""`make build` runs the SAM CLI that SAM names, like `make deploy-forwarders` (dry runs)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(*args: str) -> list[str]:
    # Run under `make test` too: no inherited make settings, no "Entering directory" lines.
    inherited = ("SAM", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    env = {k: v for k, v in os.environ.items() if k not in inherited}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def test_make_build_uses_sam_when_given() -> None:
    assert _dry_run("build", "SAM=/opt/sam-venv/bin/sam") == ["/opt/sam-venv/bin/sam build"]


def test_make_build_defaults_to_sam_on_path() -> None:
    assert _dry_run("build") == ["sam build"]
