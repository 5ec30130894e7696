"""The lean lane answers a lean route's requests as the full FastAPI stack would, errors included.

:class:`~callto.api.lean.LeanLane` sends ``POST /api/v1/calls`` past Starlette's and FastAPI's layers;
these tests check it finds the click route in the real app (a FastAPI upgrade that hides it would
otherwise slow the click silently) and that an exception is answered by the app's own handler, with its
stable error id, exactly as on the ordinary path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from callto.api import errors as api_errors
from callto.api.lean import LeanLane, LeanRoute, lean_routes
from callto.app import build_services, create_app
from callto.config import load_settings
from callto.errors import InvalidInput


def test_the_real_app_puts_the_click_route_on_the_lane(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "CALLTO_DATA_DIR": str(tmp_path),
            "CALLTO_DATABASE_URL": f"sqlite:///{tmp_path}/c.db",
            "CALLTO_ADMIN_PASSWORD": "admin-secret-1",
        }
    )
    app = create_app(build_services(settings))
    routes = dict(lean_routes(app.router.routes))
    assert ("POST", "/api/v1/calls") in routes
    assert all("{" not in path for _, path in routes)  # a path with parameters stays with the router
    assert [m.cls for m in app.user_middleware][-1] is LeanLane  # innermost: after RouteContext


def _app() -> FastAPI:
    router = APIRouter(prefix="/api/v1")

    async def lean(request: Request) -> JSONResponse:
        what = request.query_params.get("raise")
        if what == "callto":
            raise InvalidInput("bad thing", details={"field": "to"})
        if what == "http":
            raise HTTPException(status_code=404)
        if what == "bug":
            raise ZeroDivisionError
        return JSONResponse({"ok": True, "endpoint": request.scope["endpoint"].__name__}, status_code=202)

    router.add_api_route("/lean", lean, methods=["POST"], route_class_override=LeanRoute)
    app = FastAPI()
    api_errors.install(app)
    app.include_router(router)
    app.user_middleware.append(Middleware(LeanLane, owner=app))
    return app


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "router"])
def test_answers_and_errors_are_the_same_on_the_lane_and_through_the_router(lane: bool) -> None:
    app = _app()
    if not lane:
        app.user_middleware.pop()  # the ordinary path, for comparison
    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.post("/api/v1/lean")
        assert (ok.status_code, ok.json()) == (202, {"ok": True, "endpoint": "lean"})
        bad = client.post("/api/v1/lean?raise=callto")
        assert bad.status_code == 422 and bad.json()["error"] == "invalid-input"
        assert bad.json()["details"] == {"field": "to"}
        missing = client.post("/api/v1/lean?raise=http")
        assert missing.status_code == 404 and missing.json()["error"] == "not-found"
        bug = client.post("/api/v1/lean?raise=bug")
        assert bug.status_code == 500 and bug.json()["error"] == "internal-error"
        # not the lane's: the router answers (405 for another method, a redirect for a trailing slash)
        assert client.get("/api/v1/lean").status_code == 405
        assert client.post("/api/v1/lean/", follow_redirects=False).status_code == 307
