"""The console's files: served at ``/`` and ``/static/*`` with exact content types and a strict CSP."""

from __future__ import annotations

from typing import Any

from voxvault.web.routes import CONTENT_SECURITY_POLICY


def test_page_is_served_with_a_strict_content_security_policy(anon_client: Any) -> None:
    r = anon_client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = r.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    # No external asset and no inline script: everything comes from /static on this origin.
    assert 'src="/static/app.js"' in r.text and 'href="/static/style.css"' in r.text
    assert "http://" not in r.text and "https://" not in r.text
    assert "<script>" not in r.text and " style=" not in r.text and " onclick=" not in r.text


def test_script_and_style_have_their_content_types(anon_client: Any) -> None:
    js = anon_client.get("/static/app.js")
    assert js.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "Authorization" in js.text
    css = anon_client.get("/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    for body in (js.text, css.text):
        assert "http://" not in body and "https://" not in body  # nothing fetched from elsewhere


def test_unknown_and_escaping_paths_are_not_served(anon_client: Any) -> None:
    assert anon_client.get("/static/nope.js").status_code == 404
    assert anon_client.get("/static/../routes.py").status_code == 404
    assert anon_client.get("/static/%2e%2e/routes.py").status_code == 404
    assert anon_client.get("/static/").status_code == 404  # no directory listing


def test_the_page_is_not_part_of_the_api_schema(anon_client: Any) -> None:
    paths = anon_client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith("/static") for p in paths)


def test_favicon_is_served(anon_client: Any) -> None:
    r = anon_client.get("/favicon.ico")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/x-icon"
    assert r.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header


def test_api_docs_load_their_assets_from_this_server(anon_client: Any) -> None:
    for page, assets in (
        ("/docs", ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css")),
        ("/redoc", ("/docs-assets/redoc.standalone.js",)),
    ):
        html = anon_client.get(page).text
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in html
        for asset in assets:
            assert f'"{asset}"' in html
            r = anon_client.get(asset)
            assert r.status_code == 200 and len(r.content) > 100_000
