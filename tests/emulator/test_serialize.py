"""moto's serializer answers as before without repeating its alias search
(`mesh_emulator.serialize`)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mesh_emulator.serialize import _PossibleKeys
from resolver_mesh.local.topology import ClientFactory, build_hub, create_hubs_table

REGION = "us-east-1"
TABLE = "serialize-test"
_REQUEST_ID = re.compile(rb"<(requestId|RequestId)>[^<]*</(requestId|RequestId)>")


def _moto_serializer(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the rest of the test, moto's serializer as moto ships it."""
    from moto.core.serialize import ResponseSerializer, XFormedAttributePicker

    from mesh_emulator import serialize

    monkeypatch.setattr(ResponseSerializer, "get_value", serialize._moto["get_value"])
    monkeypatch.setattr(
        XFormedAttributePicker, "get_possible_keys", serialize._moto["get_possible_keys"]
    )


def _bodies(aws: ClientFactory, calls: list[tuple[str, str, dict[str, Any]]]) -> list[bytes]:
    """The raw body of every call's answer (errors included), request ids taken out."""
    bodies: list[bytes] = []

    def keep(http_response: Any, **_: Any) -> None:
        bodies.append(_REQUEST_ID.sub(b"", http_response.content))

    for service, operation, arguments in calls:
        client = aws(service, REGION)
        client.meta.events.register("after-call", keep)
        try:
            getattr(client, operation)(**arguments)
        except client.exceptions.ClientError:
            pass
        finally:
            client.meta.events.unregister("after-call", keep)
    return bodies


@pytest.fixture
def world(aws: ClientFactory) -> list[tuple[str, str, dict[str, Any]]]:
    """A hub (VPC, subnets, endpoints), a tagged VPC, and hub-like items of every DynamoDB
    type; the reads whose answers moto serializes, and two errors."""
    from boto3.dynamodb.types import Binary, TypeSerializer

    hub = build_hub(aws, REGION, workload_vpcs=1)
    ec2 = aws("ec2", REGION)
    tagged = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.associate_vpc_cidr_block(VpcId=tagged, CidrBlock="10.10.0.0/16")
    ec2.create_tags(Resources=[tagged], Tags=[{"Key": "mesh", "Value": "a"}])
    zone = f"{REGION}a"
    ec2.create_volume(Size=1, AvailabilityZone=zone)  # EC2's transformers: empty tags left out
    ec2.create_volume(
        Size=2,
        AvailabilityZone=zone,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    ec2.create_key_pair(KeyName="plain")
    create_hubs_table(aws, REGION, TABLE)
    serializer = TypeSerializer()
    for index in range(3):
        item = {
            "region": f"r-{index}",
            "shared_vpcs": [
                {"vpc_id": f"vpc-{n:017x}", "account_id": "100000000001", "weight": n}
                for n in range(20)
            ],
            "enabled": index % 2 == 0,
            "nothing": None,
            "ports": {53, 853},
            "names": {"a", "b"},
            "blob": Binary(b"\x00\x01"),
            "ratio": 1,
        }
        aws("dynamodb", REGION).put_item(
            TableName=TABLE, Item={k: serializer.serialize(v) for k, v in item.items()}
        )
    inbound = hub.inbound_endpoint_id
    return [
        ("ec2", "describe_vpcs", {}),
        ("ec2", "describe_vpcs", {"Filters": [{"Name": "vpc-id", "Values": [tagged]}]}),
        ("ec2", "describe_subnets", {}),
        ("ec2", "describe_security_groups", {}),
        ("ec2", "describe_vpc_endpoints", {}),
        ("ec2", "describe_volumes", {}),
        ("ec2", "describe_key_pairs", {}),
        ("ec2", "describe_vpcs", {"VpcIds": ["vpc-0000000000000000f"]}),  # an error
        ("dynamodb", "scan", {"TableName": TABLE}),
        ("dynamodb", "get_item", {"TableName": TABLE, "Key": {"region": {"S": "r-1"}}}),
        ("dynamodb", "describe_table", {"TableName": TABLE}),
        ("dynamodb", "scan", {"TableName": "no-such-table"}),  # an error
        ("route53resolver", "list_resolver_endpoints", {}),
        (
            "route53resolver",
            "get_resolver_endpoint",
            {"ResolverEndpointId": inbound},
        ),
        ("sts", "get_caller_identity", {}),
    ]


def test_answers_are_moto_s_own(
    aws: ClientFactory,
    world: list[tuple[str, str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every answer, byte for byte (request ids aside), is what moto's serializer gives."""
    from moto.core.serialize import ResponseSerializer

    from mesh_emulator import install

    install()
    assert ResponseSerializer.get_value.__name__ == "fast"
    ours = _bodies(aws, world)
    again = _bodies(aws, world)  # now from the names made on the first pass
    _moto_serializer(monkeypatch)
    moto_s = _bodies(aws, world)
    assert len(ours) == len(world)
    for call, mine, second, theirs in zip(world, ours, again, moto_s, strict=True):
        assert mine == theirs, call
        assert second == theirs, call
    assert b"10.10.0.0/16" in ours[1]
    assert b"<key>mesh</key>" in ours[1]
    assert ours[5].count(b"<tagSet>") == 1  # the untagged volume has none (a transformer)
    assert b"shared_vpcs" in ours[8]
    assert b"vpc-00000000000000013" in ours[8]


def test_the_names_of_a_member_are_searched_once(
    aws: ClientFactory, world: list[tuple[str, str, dict[str, Any]]]
) -> None:
    from mesh_emulator import install, serialize

    install()
    searches: list[str] = []
    possible_keys: _PossibleKeys = serialize._moto["possible_keys"]
    search = possible_keys._search

    def counted(picker: Any, context: Any) -> Any:
        searches.append(context.key)
        return search(picker, context)

    possible_keys._search = counted
    possible_keys._found.clear()
    try:
        _bodies(aws, world)
        assert {"CidrBlock", "VpcId", "S", "M", "L"} <= set(searches)
        searches.clear()
        _bodies(aws, world)
        assert searches == []
    finally:
        possible_keys._search = search


class _Vpc:
    def __init__(self) -> None:
        self.cidr_block = "10.0.0.0/16"
        self.vpc_id = "vpc-1"


class _Aliased:
    class Meta:
        serialization_aliases = {"CidrBlock": "block"}

    def __init__(self) -> None:
        self.block = "10.1.0.0/16"


class _Dynamic:
    def __getattr__(self, name: str) -> str:
        return f"dynamic {name}"


class _Intercepting(_Vpc):
    def __getattribute__(self, name: str) -> Any:
        if name == "cidr_block":
            return "intercepted"
        return super().__getattribute__(name)


def test_objects_whose_class_does_not_decide_are_asked_every_time() -> None:
    """A `Meta` of the object's own, or a class answering any name, is searched each time;
    every other object gets the names of its class, and the values of its own."""
    from moto.core.serialize import AttributePickerContext, XFormedAttributePicker

    searched: list[str] = []

    def search(picker: Any, context: Any) -> tuple[str, ...]:
        searched.append(type(context.obj).__name__)
        return (context.key, "cidr_block", "block")

    keys = _PossibleKeys(search)
    picker = XFormedAttributePicker()
    own_meta = _Vpc()
    own_meta.Meta = _Aliased.Meta  # type: ignore[attr-defined]
    objects = [_Vpc(), _Vpc(), _Aliased(), _Aliased(), own_meta, own_meta, _Dynamic()]
    objects += [_Intercepting(), _Intercepting(), {}, {}]
    for obj in objects:
        context = AttributePickerContext(obj=obj, key="CidrBlock", shape=None)
        assert tuple(keys(picker, context)) == ("CidrBlock", "cidr_block", "block")
    assert searched == [
        "_Vpc",
        "_Aliased",
        "_Vpc",
        "_Vpc",
        "_Dynamic",
        "_Intercepting",
        "_Intercepting",
        "dict",
    ]
    assert keys.known(picker, _Vpc(), None, "CidrBlock") == ("CidrBlock", "cidr_block", "block")
    assert keys.known(picker, _Vpc(), None, "VpcId") is None


def test_values_come_from_each_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names are shared by a class, values never: two VPCs answer their own CIDR, an alias
    declared by the class is followed, and a missing member answers None, as in moto."""
    from moto.core.serialize import ResponseSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model

    from mesh_emulator import install

    install()
    model = get_service_model("ec2").operation_model("DescribeVpcs")
    serializer = ResponseSerializer(model, value_picker=XFormedAttributePicker())
    shape = model.output_shape.members["Vpcs"].member.members["CidrBlock"]
    second = _Vpc()
    second.cidr_block = "10.2.0.0/16"
    objects = [_Vpc(), second, _Aliased(), {"CidrBlock": "10.3.0.0/16"}, {}, _Dynamic()]
    objects.append(_Intercepting())
    ours = [serializer.get_value(obj, "CidrBlock", shape) for obj in objects]
    ours += [serializer.get_value(obj, "CidrBlock", shape) for obj in objects]
    _moto_serializer(monkeypatch)
    moto_s = [serializer.get_value(obj, "CidrBlock", shape) for obj in objects]
    assert ours == moto_s + moto_s
    assert ours[:4] == ["10.0.0.0/16", "10.2.0.0/16", "10.1.0.0/16", "10.3.0.0/16"]


def test_a_transformer_that_applies_is_never_skipped() -> None:
    """For every key path of a response and every transformer's path that ends it, the
    member's name is one a transformer may apply to; the answer follows the dict's size."""
    from moto.ec2.responses._base_response import EC2BaseResponse

    from mesh_emulator.serialize import _Transformed

    transformers = dict(EC2BaseResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER)
    transformers["Reservation.Instances"] = None
    parents = ["", "DescribeVolumesResult.Volumes", "X.Image", "RunInstances.Reservation"]
    names = {path.rsplit(".", 1)[-1] for path in transformers}
    names |= {"Tags", "State", "Date", "Instances", "CidrBlock", "VpcId", "e", "Image.Tags"}
    may = _Transformed()
    for parent in parents:
        for name in sorted(names):
            key_path = f"{parent}.{name}"
            if any(key_path.endswith(path) for path in transformers):
                assert may.may_apply(transformers, name), key_path
    assert not may.may_apply(transformers, "VpcId")
    transformers["Vpc.VpcId"] = None
    assert may.may_apply(transformers, "VpcId")
