"""The OpenAPI document is valid 3.1 and describes exactly the routes the app serves."""

from __future__ import annotations

import yaml
from aiohttp import web
from openapi_spec_validator import validate

from livermore_common.config import CommonSettings, Secret
from services.gateway.api import OPENAPI_FILE
from services.gateway.app import create_app
from services.gateway.config import GatewaySettings

METHODS = {"get", "post", "put", "patch", "delete"}


def _document() -> dict:
    with OPENAPI_FILE.open() as f:
        return yaml.safe_load(f)


def _app_routes() -> set[tuple[str, str]]:
    settings = GatewaySettings(common=CommonSettings(), token=Secret("t" * 32))
    app = create_app(settings)
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # added by aiohttp alongside every GET
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{path}"
        found.add((path, route.method.lower()))
    return found


def test_document_is_valid_openapi_3_1() -> None:
    document = _document()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    documented = {
        (path, method)
        for path, item in _document()["paths"].items()
        for method in item
        if method in METHODS
    }
    routes = _app_routes()
    assert routes - documented == set(), "routes missing from openapi.yaml"
    assert documented - routes == set(), "openapi.yaml documents routes the app lacks"
