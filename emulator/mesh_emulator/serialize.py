"""moto's response serializer without the alias search it repeats for every value (moto 5.2.5).

moto answers EC2, DynamoDB and others through `moto.core.serialize`: for every member of
every structure in a response (each VPC's 20-odd fields, each DynamoDB attribute value's 10
type fields), `ResponseSerializer.get_value` builds a context object and the
`XFormedAttributePicker` asks six alias providers in turn which attribute names of the
Python object may hold the member (`CidrBlock`, `cidr_block`, a name without the class's or
the parent shape's prefix, an alias the model class declares), building one provider object
per question. That search and its context were most of the serializer's time, the
serializer a fifth of the emulator's CPU in a warm no-op, and a DynamoDB `Scan` of the hub
items (300 shared VPCs each) took 160 ms.

The names depend only on the picker's providers, the object's class (its name, its `Meta`),
the member's shape (its name, serialization name and parent, set once per shape) and the
member's name: `_PossibleKeys` makes them once per such combination, keeps them as a tuple
tried in the same order, and `get_value` reads the first one the object holds, as the picker
does; a service's response transformers (`RESPONSE_KEY_PATH_TO_TRANSFORMER`, EC2's among
them) are applied as the picker applies them, the key path built only for the names one of
them may apply to (`_Transformed`). Where the picker could answer otherwise, it is asked as
before: a picker of another class, or an object whose names might not be decided by its
class (a `Meta` of its own, or a class answering attributes itself: `__getattr__`, its own
`__getattribute__`).
Values are read from each object on every call, so answers are the same;
`tests/emulator/test_serialize.py` compares them with moto's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

_lock = threading.Lock()
_installed = False
_moto: dict[str, Any] = {}  # moto's own functions, replaced (the tests compare with them)

Keys = Callable[[Any, Any], Iterable[str]]


_plain_lookups: dict[type, bool] = {}


def _plain_lookup(owner: type) -> bool:
    """Whether no class of `owner`'s answers attributes itself (`__getattr__`, or a
    `__getattribute__` other than the built-in types')."""
    plain = _plain_lookups.get(owner)
    if plain is None:
        plain = _plain_lookups[owner] = not hasattr(owner, "__getattr__") and all(
            klass.__module__ == "builtins" or "__getattribute__" not in vars(klass)
            for klass in owner.__mro__
        )
    return plain


class _PossibleKeys:
    """`get_possible_keys(picker, context)` as a tuple, made once per (providers, class of
    the object, shape, member name). Safe from many threads: a dict set atomically, whose
    entries, made twice at worst, are equal."""

    def __init__(self, search: Keys) -> None:
        self._search = search
        self._found: dict[tuple[Any, ...], tuple[str, ...]] = {}

    @staticmethod
    def decided_by_class(obj: Any) -> bool:
        """Whether the names of `obj`'s members depend only on its class: no `Meta` of its
        own, and a class whose attributes are looked up as Python does."""
        return _plain_lookup(type(obj)) and "Meta" not in getattr(obj, "__dict__", ())

    def known(self, picker: Any, obj: Any, shape: Any, key: str) -> tuple[str, ...] | None:
        """The names made before for this combination, if any."""
        found = (type(picker), tuple(picker.alias_providers), type(obj), shape, key)
        return self._found.get(found)

    def __call__(self, picker: Any, context: Any) -> Iterable[str]:
        obj = context.obj
        if not self.decided_by_class(obj):
            return self._search(picker, context)
        key = (type(picker), tuple(picker.alias_providers), type(obj), context.shape, context.key)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = tuple(self._search(picker, context))
        return found


class _Transformed:
    """Whether a response transformer may apply to a member name: a transformer applies when
    the member's key path ends with its own, which then ends with the name (or the name with
    it). Remembered per transformers' dict and name while the dict keeps its size (moto only
    adds to a service's transformers); the dict is kept, so that its id stays its own."""

    def __init__(self) -> None:
        self._found: dict[tuple[int, int, str], bool] = {}
        self._kept: dict[int, dict[str, Any]] = {}

    def may_apply(self, transformers: dict[str, Any], key: str) -> bool:
        version = (id(transformers), len(transformers), key)
        found = self._found.get(version)
        if found is None:
            self._kept[id(transformers)] = transformers
            found = self._found[version] = any(
                key.endswith(path) if len(path) <= len(key) else path.endswith(key)
                for path in list(transformers)
            )
        return found


def _fast_get_value(possible_keys: _PossibleKeys, moto_get_value: Any) -> Any:
    """`ResponseSerializer.get_value` for moto's own picker, without a context object: the
    names `possible_keys` makes, tried in order, then the first response transformer whose
    path ends the member's key path, as the picker applies them."""
    from moto.core.serialize import AttributePickerContext, XFormedAttributePicker
    from moto.core.utils import MISSING, get_value  # type: ignore[attr-defined]

    transformed = _Transformed()

    def fast(serializer: Any, value: Any, key: str, shape: Any) -> Any:
        picker = serializer._value_picker
        if type(picker) is not XFormedAttributePicker or not _PossibleKeys.decided_by_class(value):
            return moto_get_value(serializer, value, key, shape)
        names: Iterable[str] | None = possible_keys.known(picker, value, shape, key)
        if names is None:
            context = AttributePickerContext(obj=value, key=key, shape=shape)
            names = possible_keys(picker, context)
        picked = None
        for name in names:
            found = get_value(value, name, MISSING)
            if found is not MISSING:
                picked = found
                break
        transformers = picker.response_transformers
        if transformers and transformed.may_apply(transformers, key):
            key_path = f"{'.'.join(serializer.path)}.{key}"
            for transform_path, transform in transformers.items():
                if key_path.endswith(transform_path):
                    return transform(picked)
        return picked

    return fast


def install_serializer_speedups() -> None:
    """Patch moto's serializer once; later calls (from any thread) do nothing."""
    global _installed
    from moto.core.serialize import ResponseSerializer, XFormedAttributePicker

    with _lock:
        if _installed:
            return
        _moto["get_possible_keys"] = XFormedAttributePicker.get_possible_keys
        _moto["get_value"] = ResponseSerializer.get_value
        _moto["possible_keys"] = possible_keys = _PossibleKeys(_moto["get_possible_keys"])

        def get_possible_keys(picker: Any, context: Any) -> Any:
            return possible_keys(picker, context)

        XFormedAttributePicker.get_possible_keys = get_possible_keys  # type: ignore[method-assign,assignment]
        ResponseSerializer.get_value = _fast_get_value(  # type: ignore[method-assign]
            possible_keys, ResponseSerializer.get_value
        )
        _installed = True
