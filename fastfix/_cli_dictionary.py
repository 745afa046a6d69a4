"""``fastfix dictionary``: compile QuickFIX XML dictionaries, show messages and fields."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastfix.errors import ConfigError


def add_arguments_dictionary(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dict_command", metavar="ACTION", required=True)
    c = sub.add_parser("compile", help="compile a QuickFIX XML dictionary to fastfix's JSON form")
    c.add_argument("xml", type=Path, help="QuickFIX-format XML file")
    c.add_argument("out", type=Path, help="output file (e.g. FIX44.json)")
    c.add_argument("--base", help="layer the XML as a dialect on this dictionary "
                                  "(FIX.4.2, FIX.4.4, or a compiled/XML file)")
    s = sub.add_parser("show", help="describe a dictionary, a message or a field")
    s.add_argument("dictionary", help="FIX.4.2, FIX.4.4, or a .xml / compiled .json file")
    s.add_argument("item", nargs="?", help="MsgType (D), message name, field tag or field name")


def _open(ref: str):
    from fastfix.dictionary import DataDictionary

    p = Path(ref)
    if p.suffix.lower() == ".xml":
        return DataDictionary.from_xml(p)
    if p.suffix.lower() == ".json" or p.exists():
        return DataDictionary.from_compiled(p)
    return DataDictionary.load(ref)


def _show_members(dd, members, indent: str, out: list[str]) -> None:
    for m in members:
        f = dd.fields.get(m.tag)
        name = f.name if f else "?"
        req = " required" if m.required else ""
        if m.group is not None:
            out.append(f"{indent}{m.tag} {name} (group, delimiter {m.group.delimiter}){req}")
            _show_members(dd, m.group.members, indent + "    ", out)
        else:
            out.append(f"{indent}{m.tag} {name} {f.type if f else ''}{req}")


def run_dictionary(args: argparse.Namespace) -> int:
    try:
        if args.dict_command == "compile":
            if args.base:
                dd = _open(args.base).extend(args.xml)
            else:
                from fastfix.dictionary import DataDictionary

                dd = DataDictionary.from_xml(args.xml)
            args.out.write_bytes(dd.compile())
            print(f"{args.out}: {dd.begin_string}, {len(dd.fields)} fields, "
                  f"{len(dd.messages)} messages")
            return 0
        dd = _open(args.dictionary)
        lines: list[str] = []
        if not args.item:
            lines.append(repr(dd))
            for m in sorted(dd.messages.values(), key=lambda m: (m.category, m.msg_type)):
                lines.append(f"  {m.msg_type:>4}  {m.name} ({m.category})")
        elif args.item in dd.messages or args.item in dd.messages_by_name:
            m = dd.message(args.item)
            lines.append(f"{m.msg_type} {m.name} ({m.category})")
            _show_members(dd, m.members, "  ", lines)
        else:
            try:
                f = dd.field(args.item)
            except KeyError:
                print(f"{args.item}: no such message or field in {dd.begin_string}",
                      file=sys.stderr)
                return 1
            lines.append(f"{f.tag} {f.name} {f.type}")
            for value, desc in f.enums.items():
                lines.append(f"  {value} = {desc}")
        print("\n".join(lines))
        return 0
    except ConfigError as exc:
        print(f"fastfix dictionary: {exc}", file=sys.stderr)
        return 1
