"""The phone-directory feed: company users and phonebook contacts as XML in the phone vendor's format.

Formats (element names are case-sensitive on the phones):

- Yealink remote phonebook: ``<YealinkIPPhoneDirectory><DirectoryEntry><Name/><Telephone/>...``.
- Snom XML minibrowser directory (what ``dkey_directory url ...`` opens):
  ``<SnomIPPhoneDirectory><Title/><DirectoryEntry><Name/><Telephone/>...``.
- Grandstream downloadable phonebook (GXP XML phonebook guide):
  ``<AddressBook><version>1</version><Contact><FirstName/><LastName/><Phone type="Work">
  <phonenumber/><accountindex>0</accountindex></Phone></Contact>...``.
- Fanvil and Gigaset: no reference could be confirmed; they get the Yealink-style
  ``IPPhoneDirectory`` form, which the Fanvil XML guide's directory objects resemble. Unverified.

Entries are built with ElementTree, so names are always escaped text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

MAX_ENTRIES = 2000


@dataclass(frozen=True)
class Entry:
    name: str
    number: str
    kind: str = "Work"


def _clean(text: str, limit: int = 64) -> str:
    # Phones show one line per entry; control characters would break their parsers.
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def _directory(root_tag: str, entries: Iterable[Entry], title: str | None) -> ET.Element:
    root = ET.Element(root_tag)
    if title is not None:
        ET.SubElement(root, "Title").text = title
    for entry in entries:
        item = ET.SubElement(root, "DirectoryEntry")
        ET.SubElement(item, "Name").text = _clean(entry.name)
        ET.SubElement(item, "Telephone").text = _clean(entry.number, 32)
    return root


def _grandstream(entries: Iterable[Entry]) -> ET.Element:
    root = ET.Element("AddressBook")
    ET.SubElement(root, "version").text = "1"
    for entry in entries:
        contact = ET.SubElement(root, "Contact")
        first, _, last = _clean(entry.name).partition(" ")
        ET.SubElement(contact, "FirstName").text = first
        ET.SubElement(contact, "LastName").text = last
        phone = ET.SubElement(contact, "Phone", {"type": entry.kind})
        ET.SubElement(phone, "phonenumber").text = _clean(entry.number, 32)
        ET.SubElement(phone, "accountindex").text = "0"
    return root


def render_feed(vendor: str, entries: Iterable[Entry], title: str = "callto") -> bytes:
    """The XML document for ``vendor`` (UTF-8, with an XML declaration), at most MAX_ENTRIES entries."""
    capped = [e for _, e in zip(range(MAX_ENTRIES), entries, strict=False)]
    if vendor == "grandstream":
        root = _grandstream(capped)
    elif vendor == "snom":
        root = _directory("SnomIPPhoneDirectory", capped, title)
    else:
        root = _directory("YealinkIPPhoneDirectory", capped, None)
    content: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return content
