"""FIX data dictionaries (QuickFIX XML format) and inbound message validation.

A :class:`DataDictionary` describes one FIX version or dialect: its fields (type,
enumerations), header, trailer and messages. Components are resolved into flat,
ordered member lists; repeating groups keep their nesting as :class:`GroupDef`.

``DataDictionary.load("FIX.4.4")`` returns the dictionary shipped with the
package; ``DataDictionary.from_xml(path)`` reads a counterparty's XML, and
``dictionary.extend(path)`` layers a dialect (extra fields, enum values,
messages, message members) on top of a base dictionary.

:meth:`DataDictionary.validate` checks a parsed message the way QuickFIX does
and returns ``None`` or a :class:`ValidationError` carrying the
SessionRejectReason (373), RefTagID (371), RefMsgType (372) and Text (58) of the
session-level Reject to send.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from fastfix._reject_text import REJECT_TEXT as REJECT_TEXT  # re-exported: validation texts
from fastfix.errors import ConfigError
from fastfix.tags import (
    HEADER_TAGS,
    MSG_TYPE,
    REF_MSG_TYPE,
    REF_SEQ_NUM,
    REF_TAG_ID,
    SESSION_REJECT_REASON,
    TEXT,
    TRAILER_TAGS,
)

__all__ = [
    "DataDictionary",
    "FieldDef",
    "GroupDef",
    "Member",
    "MessageDef",
    "ValidationOptions",
    "ValidationError",
    "SessionRejectReason",
]

_SPEC_DIR = Path(__file__).parent / "spec"
# Shipped compiled dictionaries, by BeginString.
_SHIPPED = {"FIX.4.2": "FIX42.json", "FIX.4.4": "FIX44.json"}
_COMPILED_FORMAT = 1


# --------------------------------------------------------------------------- model


class FieldDef(msgspec.Struct, frozen=True):
    """A field: tag number, name, FIX type (``"INT"``, ``"PRICE"``...) and enumerations.

    ``enums`` maps each allowed value to its description; empty when any value
    of the type is allowed.
    """

    tag: int
    name: str
    type: str
    enums: dict[str, str] = {}


class Member(msgspec.Struct, frozen=True):
    """One field of a message, header, trailer or group entry.

    ``required`` is the requirement as enforced (QuickFIX rules: a field of a
    component is required only where the component is required, fields of
    components nested in a group entry never are). ``group`` is set when the
    member is a NumInGroup field that starts a repeating group.
    """

    tag: int
    required: bool
    group: GroupDef | None = None


class GroupDef(msgspec.Struct, frozen=True):
    """A repeating group: its NumInGroup tag and name, the delimiter (first) tag, its members."""

    count_tag: int
    name: str
    delimiter: int
    members: tuple[Member, ...]


class MessageDef(msgspec.Struct, frozen=True):
    """A message type: members flattened from components in dictionary order.

    ``required`` holds the required top-level tags (group members are in the
    :class:`GroupDef`). The header and trailer are described by a
    ``MessageDef`` too (``msg_type`` empty).
    """

    msg_type: str
    name: str
    category: str
    members: tuple[Member, ...]
    required: frozenset[int]


# --------------------------------------------------------------------------- XML


class _Node(msgspec.Struct, frozen=True, array_like=True):
    """Unresolved dictionary entry: ``kind`` is "f" (field), "g" (group) or "c" (component)."""

    kind: str
    name: str
    required: bool
    children: tuple[_Node, ...] = ()


class _FieldSpec(msgspec.Struct, frozen=True, array_like=True):
    tag: int
    name: str
    type: str
    enums: dict[str, str] = {}


class _MessageSpec(msgspec.Struct, frozen=True, array_like=True):
    msg_type: str
    name: str
    category: str
    nodes: tuple[_Node, ...]


class _Spec(msgspec.Struct, frozen=True):
    """Compiled form of a dictionary: the XML content, components still unresolved."""

    format: int
    begin_string: str
    fields: tuple[_FieldSpec, ...]
    header: tuple[_Node, ...]
    trailer: tuple[_Node, ...]
    messages: tuple[_MessageSpec, ...]
    components: dict[str, tuple[_Node, ...]]


def _yes(value: str | None) -> bool:
    return value in ("Y", "y")


def _nodes(parent: ET.Element, where: str) -> tuple[_Node, ...]:
    out = []
    for el in parent:
        if el.tag not in ("field", "group", "component"):
            continue
        name = el.get("name")
        if not name:
            raise ConfigError(f"<{el.tag}> without a name attribute in {where}")
        kids = _nodes(el, f"{el.tag} {name}") if el.tag == "group" else ()
        out.append(_Node(el.tag[0], name, _yes(el.get("required")), kids))
    return tuple(out)


def _spec_from_xml(path: Path, partial: bool = False) -> _Spec:
    """Read a QuickFIX XML file; ``partial`` allows missing sections (dialect files)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ConfigError(f"{path}: could not parse data dictionary: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read data dictionary: {exc.strerror}") from None
    try:
        return _spec_from_root(root, partial)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _spec_from_root(root: ET.Element, partial: bool) -> _Spec:
    if root.tag != "fix":
        raise ConfigError("no <fix> element at the root")
    ftype = root.get("type", "FIX")
    if ftype not in ("FIX", "FIXT"):
        raise ConfigError("type attribute must be FIX or FIXT")
    major, minor = root.get("major"), root.get("minor")
    if (major is None or minor is None) and not partial:
        raise ConfigError("major/minor attribute not found on <fix>")
    begin_string = f"{ftype}.{major}.{minor}" if major is not None else ""

    fields: list[_FieldSpec] = []
    fields_el = root.find("fields")
    if fields_el is None and not partial:
        raise ConfigError("<fields> section not found")
    seen_names: set[str] = set()
    for el in fields_el if fields_el is not None else ():
        if el.tag != "field":
            continue
        name, number, ftp = el.get("name"), el.get("number"), el.get("type")
        if not name:
            raise ConfigError("<field> does not have a name attribute")
        if number is None or not number.strip().lstrip("-").isdigit():
            raise ConfigError(f"<field> {name} does not have a valid number attribute")
        if not ftp:
            raise ConfigError(f"<field> {name} does not have a type attribute")
        if name in seen_names:
            raise ConfigError(f"field named {name} defined multiple times")
        seen_names.add(name)
        enums: dict[str, str] = {}
        for v in el:
            if v.tag != "value":
                continue
            enum = v.get("enum")
            if enum is None:
                raise ConfigError(f"<value> does not have enum attribute in field {name}")
            enums[enum] = v.get("description", "")
        fields.append(_FieldSpec(int(number), name, ftp, enums))

    def section(name: str) -> tuple[_Node, ...]:
        el = root.find(name)
        if el is None:
            if partial or (name in ("header", "trailer") and major is not None and major >= "5"):
                return ()
            raise ConfigError(f"<{name}> section not found")
        return _nodes(el, f"<{name}>")

    header, trailer = section("header"), section("trailer")
    messages: list[_MessageSpec] = []
    msgs_el = root.find("messages")
    if msgs_el is None and not partial:
        raise ConfigError("<messages> section not found")
    for el in msgs_el if msgs_el is not None else ():
        if el.tag != "message":
            continue
        msg_type = el.get("msgtype")
        if msg_type is None:
            raise ConfigError("<message> does not have a msgtype attribute")
        name = el.get("name", msg_type)
        cat = el.get("msgcat", "app")
        messages.append(_MessageSpec(msg_type, name, "admin" if cat == "admin" else "app",
                                     _nodes(el, f"message {name}")))
    components: dict[str, tuple[_Node, ...]] = {}
    for el in root.find("components") if root.find("components") is not None else ():
        if el.tag == "component" and el.get("name"):
            components[el.get("name")] = _nodes(el, f"component {el.get('name')}")
    return _Spec(_COMPILED_FORMAT, begin_string, tuple(fields), header, trailer,
                 tuple(messages), components)


def _merge_specs(base: _Spec, ext: _Spec) -> _Spec:
    """Layer a dialect on a base: new fields and enum values, new or widened messages."""
    fields = {f.tag: f for f in base.fields}
    for f in ext.fields:
        old = fields.get(f.tag)
        if old is not None:
            # A dialect widens an enumeration rather than replacing it.
            enums = {**old.enums, **f.enums} if f.enums else old.enums
            f = _FieldSpec(f.tag, f.name, f.type, enums)
        fields[f.tag] = f
    msgs = {m.msg_type: m for m in base.messages}
    for m in ext.messages:
        old_m = msgs.get(m.msg_type)
        if old_m is not None:
            known = {n.name for n in old_m.nodes}
            m = _MessageSpec(m.msg_type, old_m.name, old_m.category,
                             old_m.nodes + tuple(n for n in m.nodes if n.name not in known))
        msgs[m.msg_type] = m

    def widen(a: tuple[_Node, ...], b: tuple[_Node, ...]) -> tuple[_Node, ...]:
        known = {n.name for n in a}
        return a + tuple(n for n in b if n.name not in known)

    # New message types become valid values of MsgType (35) when it is enumerated.
    mt = fields.get(MSG_TYPE)
    if mt is not None and mt.enums:
        extra = {m.msg_type: m.name for m in ext.messages if m.msg_type not in mt.enums}
        if extra:
            fields[MSG_TYPE] = _FieldSpec(MSG_TYPE, mt.name, mt.type, {**mt.enums, **extra})
    return _Spec(_COMPILED_FORMAT, base.begin_string or ext.begin_string,
                 tuple(sorted(fields.values(), key=lambda f: f.tag)),
                 widen(base.header, ext.header), widen(base.trailer, ext.trailer),
                 tuple(msgs.values()), {**base.components, **ext.components})


# --------------------------------------------------------------------------- resolution


class _Resolver:
    """Turns unresolved nodes into :class:`Member` tuples, following QuickFIX's rules."""

    def __init__(self, spec: _Spec, by_name: dict[str, FieldDef]) -> None:
        self.spec = spec
        self.by_name = by_name

    def tag(self, name: str) -> int:
        f = self.by_name.get(name)
        if f is None:
            raise ConfigError(f"field {name} not defined in fields section")
        return f.tag

    def members(self, nodes: Iterable[_Node], required_ok: bool, in_group: bool,
                stack: tuple[str, ...] = ()) -> list[Member]:
        """``required_ok``: whether required flags of these nodes count at all."""
        out: list[Member] = []
        for n in nodes:
            if n.kind == "f":
                out.append(Member(self.tag(n.name), n.required and required_ok))
            elif n.kind == "g":
                out.append(Member(self.tag(n.name), n.required and required_ok,
                                  self.group(n, stack)))
            else:
                comp = self.spec.components.get(n.name)
                if comp is None:
                    raise ConfigError(f"component not found: {n.name}")
                if n.name in stack:
                    raise ConfigError(f"component {n.name} includes itself")
                # Fields of a component count as required only where the component
                # is; inside a group entry QuickFIX never requires them.
                sub_ok = required_ok and n.required and not in_group
                out.extend(self.members(comp, sub_ok, False if not in_group else True,
                                        stack + (n.name,)))
        return out

    def group(self, node: _Node, stack: tuple[str, ...]) -> GroupDef:
        members = self.members(node.children, node.required, True, stack)
        if not members:
            raise ConfigError(f"group {node.name} has no members")
        count_tag = self.tag(node.name)
        return GroupDef(count_tag, node.name, members[0].tag, tuple(members))


def _message_def(msg_type: str, name: str, cat: str, members: list[Member]) -> MessageDef:
    return MessageDef(msg_type, name, cat, tuple(members),
                      frozenset(m.tag for m in members if m.required))


# --------------------------------------------------------------------------- validation API


class SessionRejectReason:
    """SessionRejectReason (373) codes produced by validation."""

    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    TAG_NOT_DEFINED_FOR_THIS_MESSAGE_TYPE = 2
    UNDEFINED_TAG = 3
    TAG_SPECIFIED_WITHOUT_A_VALUE = 4
    VALUE_IS_INCORRECT = 5
    INCORRECT_DATA_FORMAT_FOR_VALUE = 6
    INVALID_MSGTYPE = 11
    TAG_APPEARS_MORE_THAN_ONCE = 13
    TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER = 14
    REPEATING_GROUP_FIELDS_OUT_OF_ORDER = 15
    INCORRECT_NUMINGROUP_COUNT_FOR_REPEATING_GROUP = 16




class ValidationError(msgspec.Struct, frozen=True):
    """Why a message fails validation, with what the session-level Reject must carry.

    ``ref_tag_id`` is ``None`` when no tag is at fault (invalid MsgType).
    """

    reason: int
    ref_tag_id: int | None
    ref_msg_type: str
    text: str

    def reject_fields(self, ref_seq_num: int | None, begin_string: str = "FIX.4.4"
                      ) -> list[tuple[int, str | int]]:
        """Body fields of the Reject (35=3), in the order QuickFIX writes them.

        FIX.4.2 only defines reasons up to 11, so 373 is left out above that.
        Before FIX.4.2 there is no 371/372/373 and the tag goes into the Text.
        """
        out: list[tuple[int, str | int]] = []
        if ref_seq_num is not None:
            out.append((REF_SEQ_NUM, ref_seq_num))
        if begin_string >= "FIX.4.2":
            out.append((TEXT, self.text))
            if self.ref_tag_id is not None:
                out.append((REF_TAG_ID, self.ref_tag_id))
            if self.ref_msg_type:
                out.append((REF_MSG_TYPE, self.ref_msg_type))
            if begin_string > "FIX.4.2" or self.reason <= SessionRejectReason.INVALID_MSGTYPE:
                out.append((SESSION_REJECT_REASON, self.reason))
        else:
            text = self.text if self.ref_tag_id is None else f"{self.text} ({self.ref_tag_id})"
            out.append((TEXT, text))
        return out


_SETTINGS = {
    # QuickFIX setting -> ValidationOptions attribute
    "ValidateFieldsOutOfOrder": "check_fields_out_of_order",
    "ValidateFieldsHaveValues": "check_fields_have_values",
    "ValidateUserDefinedFields": "check_user_defined_fields",
    "AllowUnknownMsgFields": "allow_unknown_message_fields",
    "ValidateIncomingMessage": "validate_incoming_message",
    "UseDataDictionary": "validate_incoming_message",
    "ValidateUnorderedGroupFields": "check_unordered_group_fields",
}


class ValidationOptions(msgspec.Struct, frozen=True):
    """Which checks :meth:`DataDictionary.validate` runs (defaults: as QuickFIX).

    The first five mirror QuickFIX's ValidateFieldsOutOfOrder,
    ValidateFieldsHaveValues, ValidateUserDefinedFields (tags >= 5000),
    AllowUnknownMsgFields (tags < 5000 not checked against the dictionary) and
    ValidateIncomingMessage; ``check_unordered_group_fields`` mirrors
    ValidateUnorderedGroupFields (each group entry starts with its delimiter).
    The others switch off one reject reason each.
    """

    check_fields_out_of_order: bool = True
    check_fields_have_values: bool = True
    check_user_defined_fields: bool = True
    allow_unknown_message_fields: bool = False
    validate_incoming_message: bool = True
    check_unordered_group_fields: bool = True
    check_required_fields: bool = True
    check_unknown_fields: bool = True
    check_field_values: bool = True
    check_data_format: bool = True
    check_repeated_tags: bool = True
    check_group_counts: bool = True
    check_group_entries: bool = True

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ValidationOptions:
        """Build from QuickFIX setting names with ``Y``/``N`` values (others ignored)."""
        kw: dict[str, bool] = {}
        for key, attr in _SETTINGS.items():
            if key not in settings:
                continue
            raw = settings[key]
            if isinstance(raw, bool):
                val = raw
            else:
                s = str(raw).strip().upper()
                if s not in ("Y", "N"):
                    raise ConfigError(f"{key} must be Y or N, not {raw!r}")
                val = s == "Y"
            if key == "UseDataDictionary" and val:
                continue
            kw[attr] = val
        return cls(**kw)


DEFAULT_OPTIONS = ValidationOptions()


# --------------------------------------------------------------------------- dictionary


class DataDictionary:
    """One FIX version or dialect: fields, header, trailer, messages; validates messages."""

    begin_string: str
    fields: dict[int, FieldDef]
    fields_by_name: dict[str, FieldDef]
    header: MessageDef
    trailer: MessageDef
    messages: dict[str, MessageDef]
    messages_by_name: dict[str, MessageDef]

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        self.begin_string = spec.begin_string
        self.fields = {f.tag: FieldDef(f.tag, f.name, f.type, f.enums) for f in spec.fields}
        self.fields_by_name = {f.name: f for f in self.fields.values()}
        r = _Resolver(spec, self.fields_by_name)
        self.header = _message_def("", "Header", "admin", r.members(spec.header, True, False))
        self.trailer = _message_def("", "Trailer", "admin", r.members(spec.trailer, True, False))
        self.messages = {}
        for m in spec.messages:
            if m.msg_type in self.messages:
                raise ConfigError(f"message type {m.msg_type} defined twice")
            self.messages[m.msg_type] = _message_def(
                m.msg_type, m.name, m.category, r.members(m.nodes, True, False, (m.name,)))
        self.messages_by_name = {m.name: m for m in self.messages.values()}
        self._header_tags = frozenset(m.tag for m in self.header.members)
        self._trailer_tags = frozenset(m.tag for m in self.trailer.members)
        self._validator: Any = None

    # ---- construction

    @classmethod
    def load(cls, version: str) -> DataDictionary:
        """The dictionary shipped with fastfix for ``"FIX.4.2"`` or ``"FIX.4.4"`` (cached)."""
        return _load_shipped(version)

    @classmethod
    def from_xml(cls, path: str | Path, base: DataDictionary | None = None) -> DataDictionary:
        """Read a QuickFIX-format XML dictionary; with ``base``, layer it on that dictionary."""
        if base is not None:
            return base.extend(path)
        spec = _spec_from_xml(Path(path))
        try:
            return cls(spec)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_compiled(cls, path: str | Path) -> DataDictionary:
        """Read a dictionary written by :meth:`compile` (``fastfix dictionary compile``)."""
        path = Path(path)
        try:
            spec = msgspec.json.decode(path.read_bytes(), type=_Spec)
        except (OSError, msgspec.DecodeError) as exc:
            raise ConfigError(f"{path}: cannot read compiled dictionary: {exc}") from None
        if spec.format != _COMPILED_FORMAT:
            raise ConfigError(f"{path}: unsupported compiled dictionary format {spec.format}")
        try:
            return cls(spec)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def extend(self, xml_path: str | Path) -> DataDictionary:
        """A new dictionary: this one plus a dialect XML (extra fields, values, messages).

        The dialect file uses the QuickFIX format; every section is optional. A
        field it redefines keeps its base enum values plus the new ones; a
        message it lists that already exists gains the new members; components
        of the base can be referenced.
        """
        path = Path(xml_path)
        ext = _spec_from_xml(path, partial=True)
        try:
            return DataDictionary(_merge_specs(self._spec, ext))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def compile(self) -> bytes:
        """The compact JSON form shipped in ``fastfix/spec`` and read by :meth:`from_compiled`."""
        return msgspec.json.encode(self._spec)

    # ---- lookups

    def field(self, tag_or_name: int | str) -> FieldDef:
        """A field by tag number or name (``KeyError`` if unknown)."""
        if isinstance(tag_or_name, int):
            return self.fields[tag_or_name]
        if tag_or_name.isdigit():
            return self.fields[int(tag_or_name)]
        return self.fields_by_name[tag_or_name]

    def message(self, msg_type: str | bytes) -> MessageDef:
        """A message by MsgType (``"D"``) or name (``"NewOrderSingle"``); ``KeyError`` if unknown."""
        if isinstance(msg_type, bytes):
            msg_type = msg_type.decode("ascii", "replace")
        m = self.messages.get(msg_type)
        if m is None:
            m = self.messages_by_name[msg_type]
        return m

    def is_header_field(self, tag: int) -> bool:
        """Whether ``tag`` belongs to the standard header."""
        return tag in self._header_tags or tag in HEADER_TAGS

    def is_trailer_field(self, tag: int) -> bool:
        """Whether ``tag`` belongs to the standard trailer."""
        return tag in self._trailer_tags or tag in TRAILER_TAGS

    @property
    def data_fields(self) -> dict[int, int]:
        """LENGTH fields and the DATA field they size: ``{length_tag: data_tag}``.

        The mapping :class:`fastfix.codec.Tokenizer` takes as ``data_fields``.
        """
        out: dict[int, int] = {}
        for f in self.fields.values():
            if f.type != "DATA":
                continue
            for suffix in ("Len", "Length"):
                ln = self.fields_by_name.get(f.name + suffix)
                if ln is not None and ln.type in ("LENGTH", "INT"):
                    out[ln.tag] = f.tag
                    break
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataDictionary):
            return NotImplemented
        return (self.begin_string == other.begin_string and self.fields == other.fields
                and self.header == other.header and self.trailer == other.trailer
                and self.messages == other.messages)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"<DataDictionary {self.begin_string or '?'}: {len(self.fields)} fields, "
                f"{len(self.messages)} messages>")

    # ---- validation

    def validate(self, message: Any, options: ValidationOptions | None = None
                 ) -> ValidationError | None:
        """Check a parsed :class:`fastfix.codec.Message`; ``None`` when it is valid.

        The checks, their order and the reject reasons are QuickFIX's: fields out
        of header/body/trailer order (14), unknown MsgType (11), required tags
        (1), then each header, trailer and body field in tag order: repeated
        (13), empty (4), data format (6), enumerated value (5), unknown tag (0),
        not in this message (2), NumInGroup count (16). Then, beyond QuickFIX,
        the entries of repeating groups get the same field checks.
        Whether an application supports a valid MsgType is the application's
        business (BusinessMessageReject), not the dictionary's.
        """
        v = self._validator
        if v is None:
            v = self._validator = _make_validator(self)
        return v.validate(message, options or DEFAULT_OPTIONS)

    def validate_fields(self, fields: list[tuple[int, bytes]],
                        options: ValidationOptions | None = None) -> ValidationError | None:
        """As :meth:`validate`, for a wire-ordered list of ``(tag, value)`` pairs."""
        v = self._validator
        if v is None:
            v = self._validator = _make_validator(self)
        return v.validate_fields(fields, options or DEFAULT_OPTIONS)


def _make_validator(dd: DataDictionary) -> Any:
    from fastfix._validate import Validator  # compiled hot path

    return Validator(dd)


def _load_shipped(version: str) -> DataDictionary:
    key = version.strip().upper().replace("FIX.", "").replace("FIX", "").replace(".", "")
    name = {"42": "FIX42.json", "44": "FIX44.json"}.get(key)
    if name is None:
        raise ConfigError(f"no shipped data dictionary for {version!r} "
                          f"(have: {', '.join(sorted(_SHIPPED))}); use DataDictionary.from_xml")
    return _load_compiled_cached(name)


@cache
def _load_compiled_cached(name: str) -> DataDictionary:
    return DataDictionary.from_compiled(_SPEC_DIR / name)
