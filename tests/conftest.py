"""Shared fixtures: a local AWS emulator (moto server on 127.0.0.1) and clients bound to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from mesh_emulator.server import LocalEmulator, emulator_environment
from resolver_mesh.local.topology import CachedClients, ClientFactory


@pytest.fixture(scope="session")
def emulator() -> Iterator[LocalEmulator]:
    """One moto server for the whole session; use the `aws` fixture for a clean state."""
    with LocalEmulator() as running:
        yield running


@pytest.fixture
def aws(
    emulator: LocalEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ClientFactory]:
    """Reset the emulator, point boto3 at it (env vars too) and yield a cached client factory."""
    emulator.reset()
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_REGION"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name, value in emulator_environment(emulator.endpoint_url).items():
        monkeypatch.setenv(name, value)

    clients = CachedClients(boto3.session.Session(), emulator.endpoint_url)
    yield clients
    clients.close()
