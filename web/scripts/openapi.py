"""Writes web/openapi.json: the server's OpenAPI document (what /api/v1/openapi.json serves), taken from
the app itself, so no server has to run. The web build turns it into TypeScript types (openapi-typescript);
tests/web/test_web_api_types.py fails when the committed file differs from the app's.

    .venv/bin/python web/scripts/openapi.py          # rewrite web/openapi.json
    .venv/bin/python web/scripts/openapi.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "openapi.json"


def app_schema() -> dict[str, Any]:
    """The OpenAPI document of an app built on a throwaway SQLite database (nothing listens)."""
    from callto.app import build_services, create_app
    from callto.config import load_settings

    with tempfile.TemporaryDirectory(prefix="callto-openapi-") as tmp:
        settings = load_settings(
            env={}, data_dir=Path(tmp), admin_password="unused-Schema-0nly", media_rtpengine="off", log_level="warning"
        )
        services = build_services(settings)
        try:
            schema: dict[str, Any] = create_app(services).openapi()
        finally:
            services.db.dispose()
    return schema


def render(schema: dict[str, Any]) -> str:
    # Sorted and indented: a server change shows as a readable diff of this file.
    return json.dumps(schema, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render(app_schema())
    current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
    if "--check" in argv:
        if current != text:
            print(f"{OUT.name} is stale: run .venv/bin/python web/scripts/openapi.py", file=sys.stderr)
            return 1
        return 0
    if current != text:  # unchanged: keep the file's time, so the web build is not redone for nothing
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
