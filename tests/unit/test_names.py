"""Domains, rule names and the ownership marker (resolver_mesh.names)."""

from __future__ import annotations

import re

import pytest

from resolver_mesh.names import (
    creator_request_ids,
    domain_problem,
    normalise_domain,
    owned_target_region,
    ownership_prefix,
    rule_name,
)

RULE_NAME_CHARS = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("us-east-2.amazonaws.com", "us-east-2.amazonaws.com."),
        ("us-east-2.amazonaws.com.", "us-east-2.amazonaws.com."),
        ("Us-East-2.AmazonAWS.com", "us-east-2.amazonaws.com."),
        ("EXAMPLE.COM...", "example.com."),
        ("  example.com. ", "example.com."),
        ("", "."),
        (".", "."),
    ],
)
def test_normalise_domain(raw: str, expected: str) -> None:
    assert normalise_domain(raw) == expected
    assert normalise_domain(normalise_domain(raw)) == expected


@pytest.mark.parametrize(
    "domain",
    [
        "us-east-2.amazonaws.com.",
        "us-east-2.vpce.amazonaws.com.",
        "a.",
        "_sip._tcp.example.com.",
        "x" * 63 + ".com.",
        ".".join(["a" * 63] * 3) + "." + "b" * 61 + ".",  # 253 characters without the dot
        "example.com",  # the trailing dot is optional here
    ],
)
def test_domain_problem_accepts(domain: str) -> None:
    assert domain_problem(domain) is None


@pytest.mark.parametrize(
    ("domain", "words"),
    [
        (".", "root"),
        ("", "root"),
        (".".join(["a" * 63] * 3) + "." + "b" * 62 + ".", "253"),
        ("x" * 64 + ".com.", "'" + "x" * 64 + "'"),
        ("-bad.example.com.", "'-bad'"),
        ("bad-.example.com.", "'bad-'"),
        ("a..b.", "''"),
        ("*.example.com.", "'*'"),
        ("exa mple.com.", "'exa mple'"),
        ("Example.com.", "'Example'"),  # not normalised
    ],
)
def test_domain_problem_rejects(domain: str, words: str) -> None:
    problem = domain_problem(domain)
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize(
    ("mesh_id", "domain"),
    [
        ("resolver-mesh", "us-east-2.amazonaws.com."),
        ("resolver-mesh", "us-east-2.vpce.amazonaws.com."),
        ("m", "a."),
        ("x" * 32, "very.long." * 20 + "example.com."),
        ("resolver-mesh", "_srv.weird_label.example.com."),
    ],
)
def test_rule_name_is_valid_and_deterministic(mesh_id: str, domain: str) -> None:
    name = rule_name(mesh_id, domain)
    assert RULE_NAME_CHARS.match(name), name
    assert "." not in name
    assert len(name) <= 64
    assert not name.isdigit()
    assert name.startswith(mesh_id[:32])
    assert rule_name(mesh_id, domain) == name


def test_rule_name_is_readable_when_short() -> None:
    assert (
        rule_name("resolver-mesh", "us-east-2.vpce.amazonaws.com.")
        == "resolver-mesh-us-east-2-vpce-amazonaws-com"
    )


def test_rule_name_exactly_64_characters_has_no_hash() -> None:
    domain = "d" * (64 - len("m-")) + "."
    assert rule_name("m", domain) == "m-" + "d" * 62
    longer = rule_name("m", "d" + domain)
    assert len(longer) == 64
    assert longer != "m-" + "d" * 62


def test_rule_names_of_long_distinct_domains_are_distinct() -> None:
    common = "service." * 10
    domains = [f"{common}{tail}.example.com." for tail in ("a", "b", "c", "d")]
    names = [rule_name("resolver-mesh", d) for d in domains]
    assert all(len(name) == 64 for name in names)
    # Truncation alone would make all four equal: the hash suffix keeps them apart.
    assert len({name[:55] for name in names}) == 1
    assert len(set(names)) == len(domains)


def test_rule_name_differs_between_meshes() -> None:
    domain = "us-east-2.amazonaws.com."
    assert rule_name("a", domain) != rule_name("b", domain)


@pytest.mark.parametrize(
    ("creator_request_id", "mesh_id", "expected"),
    [
        (creator_request_ids("a", "us-east-1", "x.com", "us-east-2")[0], "a", "us-east-2"),
        (creator_request_ids("a-b", "us-east-1", "x.com", "us-east-2")[0], "a", None),
        (creator_request_ids("a", "us-east-1", "x.com", "us-east-2")[0], "a-b", None),
        (
            creator_request_ids("resolver-mesh", "us-east-1", "x.com", "eu-west-1")[0],
            "resolver-mesh",
            "eu-west-1",
        ),
        (
            creator_request_ids("resolver-mesh", "us-east-1", "x.com", "eu-west-1")[0],
            "resolver",
            None,
        ),
        ("resolver-mesh/a/", "a", None),  # our prefix but no target Region
        ("resolver-mesh/a", "a", None),
        ("resolver-mesh/A/us-east-1/x", "a", None),
        ("terraform-20240101", "a", None),
        ("", "a", None),
        (None, "a", None),
    ],
)
def test_owned_target_region(
    creator_request_id: str | None, mesh_id: str, expected: str | None
) -> None:
    assert owned_target_region(creator_request_id, mesh_id) == expected


def test_ownership_prefix_ends_with_separator() -> None:
    assert ownership_prefix("a") == "resolver-mesh/a/"
    assert not ownership_prefix("a-b").startswith(ownership_prefix("a"))


def test_creator_request_ids_are_stable_generations_then_salted_and_short_enough() -> None:
    mesh = "x" * 32
    first = creator_request_ids(mesh, "us-east-1", "Us-East-2.AmazonAWS.com", "us-east-2")
    again = creator_request_ids(mesh, "us-east-1", "us-east-2.amazonaws.com.", "us-east-2")
    assert first[:-1] == again[:-1]  # every generation is deterministic, on the normalised domain
    assert len(set(first[:-1])) == len(first) - 1 >= 2
    assert first[-1] != again[-1]  # the last resort is salted
    assert all(marker.startswith(first[0]) for marker in first)
    other = creator_request_ids(mesh, "us-west-2", "us-east-2.amazonaws.com", "us-east-2")
    assert other[0] != first[0]
    for marker in first:
        assert 1 <= len(marker) <= 255
        assert marker.startswith(ownership_prefix(mesh))
