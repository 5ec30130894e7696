"""The SIP package sits at the bottom of the house: it imports no feature, HTTP or storage code.

Reads every module of ``callto.sip`` with :mod:`ast` (module-level and function-level imports, and those
under ``TYPE_CHECKING``) and compares what it imports from the rest of callto with what it may import.
The call path (switch, B2BUA, transfer, origination, SDP, media flags, ports) may import only
``callto.errors``. What plugs the switch into storage, HTTP and the features lives in
:mod:`callto.switchboard`; what is still to move is listed with exactly what it imports today, so the list
can only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import callto.sip

SIP = Path(callto.sip.__file__).parent

# Shared by every layer: the error base class with its stable id and status.
ALLOWED = frozenset({"callto.errors"})

# Still to move out of callto.sip (storage, HTTP routes, composition); nothing may be added here.
NOT_YET: dict[str, set[str]] = {}

CALL_PATH = ("switch", "b2bua", "transfer", "move", "origination", "sdp", "media", "ports")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SIP.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "callto." + ".".join(parts)


def _outside_imports(path: Path) -> set[str]:
    """The callto modules outside callto.sip that ``path`` imports anywhere in its body."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                targets = [".".join([*base, node.module] if node.module else base)]
            else:
                targets = [node.module or ""]
        else:
            continue
        found.update(t for t in targets if t.startswith("callto.") and t.split(".")[1] != "sip")
    return found


def _imports_by_module() -> dict[str, set[str]]:
    return {_module_name(path): _outside_imports(path) for path in sorted(SIP.rglob("*.py"))}


def test_call_path_modules_import_nothing_outside_the_sip_package_but_errors() -> None:
    imports = _imports_by_module()
    for short in CALL_PATH:
        name = f"callto.sip.{short}"
        assert name in imports, name
        assert imports[name] <= ALLOWED, (name, sorted(imports[name] - ALLOWED))


def test_sip_modules_gain_no_new_imports_of_feature_http_or_storage_code() -> None:
    for name, outside in _imports_by_module().items():
        extra = outside - ALLOWED - NOT_YET.get(name, set())
        assert not extra, f"{name} imports {sorted(extra)}: give callto.sip its own type and adapt on the feature side"
