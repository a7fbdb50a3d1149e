"""moto's serializer answers as before without repeating its alias search
(`mesh_emulator.serialize`)."""

from __future__ import annotations

import random
import re
import threading
from typing import Any

import pytest

from mesh_emulator.serialize import _PossibleKeys
from resolver_mesh.local.topology import ClientFactory, build_hub, create_hubs_table

REGION = "us-east-1"
TABLE = "serialize-test"
_REQUEST_ID = re.compile(rb"<(requestId|RequestId)>[^<]*</(requestId|RequestId)>")


def _moto_serializer(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the rest of the test, moto's serializer as moto ships it (xmltodict's `unparse`
    included)."""
    from moto.core import serialize as moto_serialize
    from moto.core.serialize import ResponseSerializer, XFormedAttributePicker

    from mesh_emulator import serialize

    monkeypatch.setattr(ResponseSerializer, "get_value", serialize._moto["get_value"])
    monkeypatch.setattr(
        XFormedAttributePicker, "get_possible_keys", serialize._moto["get_possible_keys"]
    )
    monkeypatch.setattr(moto_serialize, "xmltodict", serialize._moto["xmltodict"])


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
    odd = [
        {"Key": "odd & <chars>", "Value": "\"quoted\" 'x' > ünï ☃ \t"},
        {"Key": "e", "Value": ""},
    ]
    ec2.create_tags(Resources=[tagged], Tags=odd)  # escaped, unicode and empty texts
    zone = f"{REGION}a"
    ec2.create_volume(Size=1, AvailabilityZone=zone)  # EC2's transformers: empty tags left out
    ec2.create_volume(
        Size=2,
        AvailabilityZone=zone,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    ec2.create_key_pair(KeyName="plain")
    aws("iam", REGION).create_role(
        RoleName="mesh-role", AssumeRolePolicyDocument="{}", Description="a & <b> ☃"
    )
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
        ("iam", "get_role", {"RoleName": "mesh-role"}),  # the query protocol's XML
        ("iam", "list_roles", {}),
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
    assert b"<key>odd &amp; &lt;chars&gt;</key>" in ours[1]
    assert "<value>\"quoted\" 'x' &gt; ünï ☃ \t</value>".encode() in ours[1]
    assert b"<value/>" in ours[1]
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


class _Items:
    """A class with items: moto reads its names as items (a missing one: its default)."""

    def __init__(self, items: dict[str, Any]) -> None:
        self.items = items
        self.cidr_block = "an attribute, never read"

    def __getitem__(self, name: str) -> Any:
        return self.items[name]


class _ItemsOfItsOwn(_Vpc):
    """An object whose own `__dict__` holds `__getitem__`: moto asks `obj[name]`, which fails
    (the class has no items), and answers its default."""

    def __init__(self) -> None:
        super().__init__()
        self.__getitem__ = lambda name: "never"


class _Missing(dict):  # type: ignore[type-arg]
    """A dict of another class, which answers missing names itself."""

    def __missing__(self, name: str) -> str:
        return f"missing {name}"


class _Meta(type):
    def __getitem__(cls, name: str) -> str:
        return "the class's item, not its objects'"


class _WithMetaclass(_Vpc, metaclass=_Meta):
    """A class whose metaclass has items; its objects have none (moto reads attributes)."""


class _Slotted:
    __slots__ = ("cidr_block",)

    def __init__(self) -> None:
        self.cidr_block = "10.4.0.0/16"


class _Failing:
    @property
    def cidr_block(self) -> str:
        raise AttributeError("gone")  # moto's getattr answers its default

    @property
    def CidrBlock(self) -> str:
        raise AttributeError("gone too")


class _Dotted:
    class Meta:
        serialization_aliases = {"CidrBlock": "inner.block"}

    def __init__(self) -> None:
        self.inner = _Aliased()


def test_values_come_from_each_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names are shared by a class, values never: two VPCs answer their own CIDR, an alias
    declared by the class is followed (a path too), a missing member answers None, and
    objects with items (their class's, their own, a dict's and its subclass's, not their
    metaclass's), slots or failing properties are read as moto reads them."""
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
    objects += [_Intercepting(), _Items({"cidr_block": "10.5.0.0/16"}), _Items({})]
    objects += [_ItemsOfItsOwn(), _Missing(), _Missing(cidr_block="10.6.0.0/16")]
    objects.append(_WithMetaclass())
    objects += [_Slotted(), _Failing(), _Dotted()]
    ours = [serializer.get_value(obj, "CidrBlock", shape) for obj in objects]
    ours += [serializer.get_value(obj, "CidrBlock", shape) for obj in objects]
    _moto_serializer(monkeypatch)
    moto_s = [serializer.get_value(obj, "CidrBlock", shape) for obj in objects]
    assert ours == moto_s + moto_s
    assert ours[:4] == ["10.0.0.0/16", "10.2.0.0/16", "10.1.0.0/16", "10.3.0.0/16"]
    assert ours[7:16] == [
        "10.5.0.0/16",  # an item
        None,  # no such item
        None,  # items of its own: moto's obj[name] fails
        "missing CidrBlock",  # a dict's own answer
        "missing CidrBlock",  # for the first name, "CidrBlock"
        "10.0.0.0/16",  # the metaclass's items are not its objects'
        "10.4.0.0/16",
        None,
        "10.1.0.0/16",  # a path
    ]


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


class _Text(str):
    """A str of another class (xmltodict writes it, the fast emitter leaves it as it is)."""


class _Map(dict):  # type: ignore[type-arg]
    """A dict of another class."""


class _List(list):  # type: ignore[type-arg]
    """A list of another class (xmltodict iterates it; the fast emitter leaves it to it)."""


_NAMES: list[Any] = ["item", "vpcSet", "a", "b", "#text", "@attr", "@xmlns", "#comment"]
_NAMES += ["b c", "x/y", "?p", "", "é", "Ünï", 5, None, _Text("s"), "@", "@a b", "q'", "@#text"]
_TEXTS: list[Any] = ["", "plain", "a & b", "<tag>", "x > y", "'single' \"double\"", "\n\t\r"]
_TEXTS += ["ünïcödé ☃", "\udcff", "&amp;", " ", _Text("sub & <class>"), _Text(""), "]]>"]


def _document(seed: int) -> tuple[dict[Any, Any], dict[str, Any]]:
    """A document made at random from `seed` (the same each time: a generator in it is
    consumed once), and the options to write it with."""
    import datetime
    import decimal

    r = random.Random(seed)

    def value(depth: int) -> Any:
        kind = r.randrange(9 if depth > 4 else 17)
        if kind == 0:
            return None
        if kind == 1:
            return r.choice([True, False])
        if kind == 2:
            return r.choice([0, -3, 10**20, 1.5, float("nan"), decimal.Decimal("1.10")])
        if kind == 3:
            return r.choice([b"bytes", b"\xff\xfe", bytearray(b"ba"), memoryview(b"mv")])
        if kind in (4, 5, 6, 7):
            return r.choice(_TEXTS)
        if kind == 8:
            return datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
        if kind in (9, 10, 11, 12):
            made: dict[Any, Any] = _Map() if r.random() < 0.1 else {}
            for _ in range(r.randrange(6)):
                common = ["item", "a", "b", "#text", "@attr", "vpcSet"]
                made[r.choice(_NAMES if r.random() < 0.3 else common)] = value(depth + 1)
            return made
        if kind in (13, 14):
            items = [value(depth + 1) for _ in range(r.randrange(4))]
            if r.random() < 0.1:
                return [items]  # a list in a list: xmltodict writes its str()
            return r.choice([list, tuple, list, _List])(items)
        if kind == 15:
            return r.choice([set(), {1}, range(2), (c for c in "ab"), {}.keys(), []])
        return {"@xmlns": r.choice(["http://ec2.amazonaws.com/doc/", {"p": "u"}, None, 5])}

    if r.random() < 0.85:
        document = {r.choice([*_NAMES[:4], "Response"]): value(0)}
    else:
        document = {r.choice(_NAMES): value(0) for _ in range(r.randrange(3))}
    options = r.choice(
        [
            {"full_document": True, "short_empty_elements": True, "pretty": False},  # EC2's
            {"full_document": False, "short_empty_elements": True, "pretty": False},  # query
            {"full_document": True, "short_empty_elements": False, "pretty": None},  # REST-XML
            {},
            {"pretty": True},
            {"full_document": False, "encoding": "latin-1"},
        ]
    )
    return document, options


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _written(unparse: Any, document: dict[Any, Any], options: dict[str, Any]) -> Any:
    """The text written (objects' addresses taken out: a document is made again each
    time), or the error raised: the same error is the same answer."""
    try:
        return _ADDRESS.sub("", unparse(document, **options))
    except Exception as error:
        return type(error), str(error)


def test_xml_is_xmltodict_s_own_for_any_document() -> None:
    """`_XmlEmitter` writes what `xmltodict.unparse` writes, or raises what it raises, for
    documents of every shape: nested dicts, lists and tuples, attributes, texts to escape,
    empty, None, booleans, numbers, bytes, unicode, names xmltodict refuses, and the
    iterables and options it leaves to xmltodict; and it writes most of them itself."""
    import xmltodict

    from mesh_emulator.serialize import _XmlEmitter

    left: list[Any] = []

    def moto_s(*args: Any, **kwargs: Any) -> Any:
        left.append(args)
        return xmltodict.unparse(*args, **kwargs)

    emitter = _XmlEmitter(moto_s)
    written = errors = own = 0
    for seed in range(12_000):
        theirs = _written(xmltodict.unparse, *_document(seed))
        for _ in range(2):  # the second time with the names known
            asked = len(left)
            assert _written(emitter, *_document(seed)) == theirs, _document(seed)
            own += isinstance(theirs, str) and len(left) == asked
        written += isinstance(theirs, str)
        errors += not isinstance(theirs, str)
    assert written > 8_000
    assert errors > 1_000
    assert own > written  # of 2 * written: most were the fast emitter's own


def test_xml_of_moto_s_documents_is_written_without_xmltodict(
    aws: ClientFactory,
    world: list[tuple[str, str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answers of the world's calls and of two query-protocol errors (EC2's, STS's, IAM's
    and SNS's XML) are all written by the fast emitter, never left to xmltodict, and are
    xmltodict's own, byte for byte."""
    from moto.core import serialize as moto_serialize

    from mesh_emulator import install, serialize

    install()
    errors = [
        ("iam", "get_role", {"RoleName": "no-such-role"}),
        ("sns", "get_topic_attributes", {"TopicArn": f"arn:aws:sns:{REGION}:123456789012:no"}),
    ]
    calls = [*world, *errors]
    emitter = moto_serialize.xmltodict.unparse
    left: list[Any] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        left.append(args)
        return emitter._unparse(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(emitter, "_unparse", counted)
        ours = _bodies(aws, calls)
    assert left == []
    monkeypatch.setattr(moto_serialize, "xmltodict", serialize._moto["xmltodict"])
    assert _bodies(aws, calls) == ours
    assert b"<Code>NoSuchEntity</Code>" in ours[-2]
    assert "<Description>a &amp; &lt;b&gt; ☃</Description>".encode() in ours[-4]


def test_the_xml_emitter_is_installed_once() -> None:
    """`install()` from many threads at once stands for xmltodict in moto's serializer
    once, over xmltodict itself; xmltodict stays as it is for everyone else."""
    import xmltodict
    from moto.core import serialize as moto_serialize

    from mesh_emulator import install, serialize

    threads = [threading.Thread(target=install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    install()
    standing = moto_serialize.xmltodict
    assert isinstance(standing, serialize._XmlToDict)
    assert standing.module is xmltodict
    assert serialize._moto["xmltodict"] is xmltodict
    assert standing.parse is xmltodict.parse
    assert isinstance(standing.unparse, serialize._XmlEmitter)
    assert standing.unparse._unparse is xmltodict.unparse
    assert xmltodict.unparse.__module__ == "xmltodict"
