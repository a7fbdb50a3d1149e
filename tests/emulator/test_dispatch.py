"""moto's dispatch answers as before without repeating its lookups (`mesh_emulator.dispatch`)."""

from __future__ import annotations

import inspect
import os
import threading
import time
from typing import Any

import pytest

from resolver_mesh.local.topology import ClientFactory

REGION = "us-east-1"


def test_dispatch_finds_the_same_actions_as_moto() -> None:
    """`_FunctionNames` answers `in` as `inspect.getmembers(cls, inspect.isfunction)` does, for
    every name of the response classes of the services the mesh uses."""
    from moto.ec2.responses import EC2Response
    from moto.ram.responses import ResourceAccessManagerResponse
    from moto.route53resolver.responses import Route53ResolverResponse
    from moto.sts.responses import TokenResponse

    from mesh_emulator import install
    from mesh_emulator.dispatch import _FunctionNames
    from mesh_emulator.route53profiles import Route53ProfilesResponse

    install()
    for owner in (
        EC2Response,
        ResourceAccessManagerResponse,
        Route53ResolverResponse,
        Route53ProfilesResponse,
        TokenResponse,
    ):
        moto_names = {name for name, _ in inspect.getmembers(owner, inspect.isfunction)}
        names = _FunctionNames(owner)
        candidates = set(dir(owner)) | {"list_resolver_rules", "no_such_action", "", "__init__"}
        for name in candidates:
            assert (name in names) == (name in moto_names), (owner.__name__, name)
        assert 3 not in names


def test_moto_s_package_is_not_listed_for_every_request(
    aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import backends

    listed: list[str] = []
    listdir = os.listdir

    def counted(path: Any = ".") -> list[str]:
        listed.append(str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counted)
    for _ in range(3):
        aws("route53resolver", REGION).list_resolver_rules()
    assert not [path for path in listed if path.rstrip("/").endswith("moto")]
    assert "route53resolver" in backends.list_of_moto_modules()
    assert "ec2" in backends.list_of_moto_modules()


def test_a_model_asked_for_by_many_threads_at_once_is_made_once() -> None:
    from mesh_emulator.dispatch import _made_once

    made: list[str] = []
    barrier = threading.Barrier(20)

    def make(name: str) -> object:
        made.append(name)
        time.sleep(0.05)  # long enough for every thread to ask meanwhile
        return object()

    once = _made_once(make)
    answers: list[object] = []

    def ask() -> None:
        barrier.wait()
        answers.append(once("ram"))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["ram"]
    assert len({id(answer) for answer in answers}) == 1
    assert once("ec2") is not answers[0]
    assert made == ["ram", "ec2"]


def test_moto_asks_for_service_models_and_routers_made_once() -> None:
    from moto.core import responses, routing, utils

    from mesh_emulator import install

    install()
    assert responses.get_service_model is utils.get_service_model is routing.get_service_model
    assert responses.get_service_router is routing.get_service_router
    model = utils.get_service_model("route53resolver")
    assert model.service_name == "route53resolver"
    assert utils.get_service_model("route53resolver") is model
    assert routing.get_service_router("ram") is routing.get_service_router("ram")
