"""The Profiles adapter's two reads: in full where a hub delivers through a Profile, lean (one
`ListProfiles`) where a Profile of ours could only be left from an earlier delivery."""

from __future__ import annotations

from collections import Counter
from typing import Any

from resolver_mesh.aws.calls import Caller, RateLimiter
from resolver_mesh.aws.profiles import ProfilesRegion
from resolver_mesh.names import OWNER_TAG_KEY, profile_name

MESH = "resolver-mesh"


class FakeProfiles:
    """A route53profiles client with fixed answers that counts its calls."""

    def __init__(self, *names: str) -> None:
        self.calls: Counter[str] = Counter()
        self.summaries = [
            {"Id": f"rp-{i:017x}", "Arn": f"arn:aws:route53profiles:r:1:profile/rp-{i}", "Name": n}
            for i, n in enumerate(names)
        ]

    def list_profiles(self, **_: Any) -> dict[str, Any]:
        self.calls["ListProfiles"] += 1
        return {"ProfileSummaries": self.summaries}

    def list_tags_for_resource(self, **_: Any) -> dict[str, Any]:
        self.calls["ListTagsForResource"] += 1
        return {"Tags": {OWNER_TAG_KEY: MESH}}

    def list_profile_associations(self, **_: Any) -> dict[str, Any]:
        self.calls["ListProfileAssociations"] += 1
        return {"ProfileAssociations": []}

    def list_profile_resource_associations(self, **_: Any) -> dict[str, Any]:
        self.calls["ListProfileResourceAssociations"] += 1
        return {"ProfileResourceAssociations": []}


def region(client: FakeProfiles) -> ProfilesRegion:
    return ProfilesRegion("us-east-1", client, Caller(RateLimiter(1000.0), 1))


def test_a_lean_read_without_a_profile_of_our_name_is_one_call() -> None:
    client = FakeProfiles("someone-elses", "another")
    state = region(client).read(MESH, lean=True)
    assert client.calls == {"ListProfiles": 1}
    assert [p.name for p in state.profiles] == ["someone-elses", "another"]  # counted (quota)
    assert not any(p.ours for p in state.profiles)
    assert state.associations == state.resources == ()


def test_a_lean_read_that_finds_our_name_reads_in_full() -> None:
    client = FakeProfiles("someone-elses", profile_name(MESH))
    state = region(client).read(MESH, lean=True)
    assert client.calls == {
        "ListProfiles": 1,
        "ListTagsForResource": 1,
        "ListProfileAssociations": 1,
        "ListProfileResourceAssociations": 1,
    }
    assert [p.ours for p in state.profiles] == [False, True]


def test_a_full_read_lists_associations_even_without_a_profile_of_ours() -> None:
    client = FakeProfiles("someone-elses")
    region(client).read(MESH)
    assert client.calls == {"ListProfiles": 1, "ListProfileAssociations": 1}
