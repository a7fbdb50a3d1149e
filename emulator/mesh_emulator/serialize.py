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
`tests/emulator/test_serialize.py` compares them with moto's. Each name is read as moto's
`get_value` reads it, without its two calls and checks per name (`_read`): `getattr` for an
object with no items (`__getitem__` in none of its classes, nor its own `__dict__`),
`dict.get` for a dict; a path (`a.b`) or an object with items is `get_value`'s.

The serializer's dict then becomes XML through `xmltodict.unparse` (EC2's and the other query
and REST-XML protocols' answers), which goes through a SAX generator one call per element,
text and attribute, and validates every element's name again (a scan of its characters) each
time it meets it: for a DescribeVpcs, as long as the serializer. `_XmlEmitter` writes the same
text for the documents moto builds (dicts, lists and tuples of them, strings, None and other
values, which xmltodict converts to text itself), with the same escaping (`xml.sax.saxutils`'
`escape` and `quoteattr`, the generator's own), each name validated once by xmltodict's own
check; anything else (pretty printing, another output, encoding or option, comments, a name
that is not a `str`, an iterable other than a list or tuple, `@xmlns` maps), or a document
that made it raise, goes to xmltodict as before. It stands for the `xmltodict` module in
`moto.core.serialize` only (`_XmlToDict`); `tests/emulator/test_serialize.py` compares it with
xmltodict, byte for byte.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
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


_ATTRIBUTES, _DICT, _OTHER = 0, 1, 2  # how moto's `get_value` reads a name of an object
_reads: dict[type, int] = {}


def _read(owner: type) -> int:
    """How `moto.core.utils.get_value` reads a plain name (no dot) of an object of class
    `owner`, whose attributes are looked up as Python does: `getattr`, when no class of its
    has `__getitem__` (nor, to be checked per object, its own `__dict__`); `dict.get` for a
    dict; for anything else, moto's `get_value` itself."""
    read = _reads.get(owner)
    if read is None:
        if owner is dict:
            read = _DICT
        elif any("__getitem__" in vars(klass) for klass in owner.__mro__):
            read = _OTHER
        else:
            read = _ATTRIBUTES
        _reads[owner] = read
    return read


def _fast_get_value(possible_keys: _PossibleKeys, moto_get_value: Any) -> Any:
    """`ResponseSerializer.get_value` for moto's own picker, without a context object: the
    names `possible_keys` makes, tried in order (each read as moto's `get_value` reads it,
    `_read`), then the first response transformer whose path ends the member's key path, as
    the picker applies them."""
    from moto.core.serialize import AttributePickerContext, XFormedAttributePicker
    from moto.core.utils import MISSING, get_value  # type: ignore[attr-defined]

    transformed = _Transformed()

    def fast(serializer: Any, value: Any, key: str, shape: Any) -> Any:
        picker = serializer._value_picker
        owner = type(value)
        plain = _plain_lookups.get(owner)
        if plain is None:
            plain = _plain_lookup(owner)
        own = getattr(value, "__dict__", ())
        if type(picker) is not XFormedAttributePicker or not plain or "Meta" in own:
            return moto_get_value(serializer, value, key, shape)  # not decided by its class
        names: Iterable[str] | None = possible_keys.known(picker, value, shape, key)
        if names is None:
            context = AttributePickerContext(obj=value, key=key, shape=shape)
            names = possible_keys(picker, context)
        read = _reads.get(owner)
        if read is None:
            read = _read(owner)
        if read == _ATTRIBUTES and "__getitem__" in own:
            read = _OTHER
        picked = None
        for name in names:
            if type(name) is not str or "." in name or read == _OTHER:
                found = get_value(value, name, MISSING)  # a path, or an object with items
            elif read == _ATTRIBUTES:
                found = getattr(value, name, MISSING)
            else:
                found = value.get(name, MISSING)
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


class _LeftToXmltodictError(Exception):
    """A document the fast emitter leaves to xmltodict."""


_NAMES_KEPT = 10_000  # names found valid, remembered (moto's models have a few thousand)


class _XmlEmitter:
    """`xmltodict.unparse` for the documents moto's serializer builds: the same text, written
    straight into a list (see the module's docstring). Any other call, or any document it
    could not write, is xmltodict's. Thread-safe: no state but the names found valid (a dict
    set atomically)."""

    def __init__(self, unparse: Callable[..., Any]) -> None:
        from xml.sax.saxutils import escape, quoteattr

        xmltodict = importlib.import_module("xmltodict")
        self._unparse = unparse
        self._validate: Callable[[Any, str], None] = xmltodict._validate_name
        self._convert: Callable[..., str] = xmltodict._convert_value_to_string
        self._escape: Callable[[str], str] = escape
        self._quoteattr: Callable[[str], str] = quoteattr
        self.valid: dict[str, None] = {}

    def __call__(
        self,
        input_dict: Any,
        output: Any = None,
        encoding: Any = "utf-8",
        full_document: Any = True,
        short_empty_elements: Any = False,
        comment_key: Any = "#comment",
        **kwargs: Any,
    ) -> Any:
        if (
            output is None
            and type(encoding) is str
            and encoding == "utf-8"
            and type(comment_key) is str
            and comment_key == "#comment"
            and (not kwargs or (len(kwargs) == 1 and "pretty" in kwargs and not kwargs["pretty"]))
            and type(input_dict) is dict
            and (len(input_dict) == 1 or not full_document)
        ):
            try:
                return self._document(input_dict, bool(full_document), bool(short_empty_elements))
            except Exception:  # noqa: S110 - xmltodict answers (or raises) as it would
                pass
        return self._unparse(
            input_dict,
            output,
            encoding,
            full_document,
            short_empty_elements,
            comment_key,
            **kwargs,
        )

    def _document(self, roots: dict[Any, Any], full: bool, short: bool) -> str:
        out: list[str] = ['<?xml version="1.0" encoding="utf-8"?>\n'] if full else []
        emit = self._emitter(out, short)
        for key, value in roots.items():
            emit(key, value, full)
        return "".join(out)

    def _emitter(self, out: list[str], short: bool) -> Callable[[Any, Any, bool], None]:
        """A writer of elements into `out`, as xmltodict's `_emit` makes a SAX generator
        write them (`short`: an empty element as `<a/>`)."""
        valid = self.valid
        validate = self._validate
        convert = self._convert
        escape = self._escape
        quoteattr = self._quoteattr
        append = out.append
        list_or_tuple = (list, tuple)
        single = (str, bytes, bytearray, memoryview, dict)
        dict_or_str = (dict, str)

        def text(value: Any) -> str | None:
            """What the generator writes for a text (`characters`): the value, escaped, or
            nothing (None) for an empty one."""
            if type(value) is str:
                plain: str = value
                if not plain:
                    return None
                if "&" in plain or "<" in plain or ">" in plain:
                    plain = plain.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
                return plain
            converted = convert(value, encoding="utf-8", bytes_errors="replace")
            return escape(converted) if converted else None

        def element(key: Any, item: Any) -> None:
            """One element of `key` for `item` (a dict, a text, None or another value)."""
            if item is None:
                append(f"<{key}/>" if short else f"<{key}></{key}>")
                return
            if not isinstance(item, dict_or_str):
                item = convert(item, encoding="utf-8", bytes_errors="replace")
            if isinstance(item, str):
                written = text(item)
                if written is not None:
                    append(f"<{key}>{written}</{key}>")
                else:
                    append(f"<{key}/>" if short else f"<{key}></{key}>")
                return
            cdata = None
            opening = "<" + key
            at = len(out)
            append(opening)
            for child, value in item.items():
                if type(value) is str and type(child) is str and child in valid:
                    if not value:  # the commonest elements, written here
                        append(f"<{child}/>" if short else f"<{child}></{child}>")
                        continue
                    if "&" in value or "<" in value or ">" in value:
                        value = value.replace("&", "&amp;").replace(">", "&gt;")
                        value = value.replace("<", "&lt;")
                    append(f"<{child}>{value}</{child}>")
                    continue
                if child == "#text":
                    cdata = None if value is None else convert(value)
                    continue
                if isinstance(child, str) and child.startswith("@"):
                    if child == "@xmlns" and isinstance(value, dict):
                        raise _LeftToXmltodictError
                    if value is None:
                        value = ""
                    elif not isinstance(value, str):
                        value = convert(value)
                    name = child[1:]
                    validate(name, "attribute")
                    opening += " %s=%s" % (name, quoteattr(value))  # noqa: UP031
                    continue
                if isinstance(value, list) and not value:
                    continue  # xmltodict leaves empty lists out
                emit(child, value, False)
            if cdata is not None:
                written = text(cdata)
                if written is not None:
                    append(written)
            if len(out) == at + 1:  # nothing written inside
                out[at] = opening + ("/>" if short else f"></{key}>")
            else:
                out[at] = opening + ">"
                append(f"</{key}>")

        def emit(key: Any, value: Any, root: bool) -> None:
            """The elements of `key` for `value` (one per item of a list or tuple)."""
            if type(key) is not str or key not in valid:
                if type(key) is not str or key == "#comment":
                    raise _LeftToXmltodictError
                validate(key, "element")
                if len(valid) < _NAMES_KEPT and key != "#text" and not key.startswith("@"):
                    valid[key] = None  # a child of this name is an element, written at once
            if type(value) in list_or_tuple:
                if root and len(value) > 1:
                    raise _LeftToXmltodictError  # xmltodict: a document with multiple roots
                for item in value:
                    element(key, item)
            elif not hasattr(value, "__iter__") or isinstance(value, single):
                element(key, value)
            else:
                raise _LeftToXmltodictError  # another iterable (xmltodict may consume it)

        return emit


class _XmlToDict(ModuleType):
    """The `xmltodict` module as `moto.core.serialize` sees it: its `unparse` is
    `_XmlEmitter`'s, everything else the module's own."""

    def __init__(self, module: ModuleType) -> None:
        super().__init__(module.__name__, module.__doc__)
        self.module = module
        self.unparse = _XmlEmitter(module.unparse)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def install_serializer_speedups() -> None:
    """Patch moto's serializer once; later calls (from any thread) do nothing."""
    global _installed
    from moto.core import serialize as serialize_module
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
        _moto["xmltodict"] = xmltodict = getattr(serialize_module, "xmltodict")  # noqa: B009
        setattr(serialize_module, "xmltodict", _XmlToDict(xmltodict))  # noqa: B010
        _installed = True
