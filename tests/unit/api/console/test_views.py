"""The console's pages through Flask: what each shows, that nothing a config, a bundle, the
install root or a log line holds reaches the page unescaped, the ops check (the key form for a
refused browser, no data in it), security headers, the console token cookie, and the static
files (no external reference, no HTML built from data)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import yaml

from tests.unit.api.console.console_fakes import DEPLOY, LOCAL, REMOTE, cls_config
from tests.unit.fakes import fake_factory, jpeg_b64
from visionpack.access import store
from visionpack.api import csrf
from visionpack.api.app import create_app
from visionpack.api.console import views

STATIC = Path(views.__file__).parent / "static"
TEMPLATES = Path(views.__file__).parent / "templates" / "console"
EVIL = '<script>alert("x")</script>'
EVIL_IMG = "<img src=x onerror=alert(1)>"


def get(client, path, env=LOCAL, headers=None):
    return client.get(path, environ_base=env, headers=headers or {})


def text(resp) -> str:
    return resp.get_data(as_text=True)


def classify(client, body):
    return client.post(
        f"/{DEPLOY}/ImageClassification",
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
        environ_base=LOCAL,
    )


def test_every_page_of_a_classification_deploy(client):
    for path, marker in (
        ("/console", 'id="fact-deploy"'),
        ("/console/", 'id="fact-deploy"'),
        ("/console/overview", 'id="charts"'),
        ("/console/try", 'id="try-form"'),
        ("/console/errors", 'id="errors"'),
    ):
        r = get(client, path)
        assert r.status_code == 200 and marker in text(r), path
        assert r.mimetype == "text/html"
    page = text(get(client, "/console"))
    assert "Face gallery" not in page and 'href="/console/gallery"' not in page
    assert get(client, "/console/gallery").status_code == 404


def test_a_face_deploy_has_the_gallery_page(face_client):
    page = text(get(face_client, "/console/gallery"))
    attrs = dict(re.findall(r'data-(list|add|remove|crops|delete|search)="([^"]+)"', page))
    assert attrs == {
        "list": "/demo-face/FaceGallery/list",
        "add": "/demo-face/FaceGallery/add",
        "remove": "/demo-face/FaceGallery/remove",
        "crops": "/demo-face/FaceGallery/crops",
        "delete": "/demo-face/FaceGallery/group/delete",
        "search": "/face-recognition-infer",
    }
    assert 'href="/console/gallery"' in text(get(face_client, "/console"))


def test_the_try_form_names_the_routes_own_parameters(client, face_client):
    page = text(get(client, "/console/try"))
    assert 'data-path="/demo-classify/ImageClassification"' in page and 'data-draw="classes"' in page
    assert 'name="top_num"' in page
    page = text(get(face_client, "/console/try"))
    assert 'data-path="/face-recognition-infer"' in page and 'data-draw="faces"' in page
    assert all(f'name="{p}"' in page for p in ("indexKey", "detThreshold", "recThreshold", "topk"))
    fixed = re.search(r"data-fixed='([^']*)'", page).group(1)
    assert json.loads(fixed) == {"visualize": False}


def test_unknown_pages_answer_the_json_envelope(client):
    r = get(client, "/console/nope")
    assert r.status_code == 404 and r.get_json()["error_code"] == 336001


def test_the_overview_counts_come_from_the_metrics(client):
    for _ in range(3):
        assert classify(client, {"image": jpeg_b64(), "top_num": 1}).status_code == 200
    classify(client, "{broken")
    page = text(get(client, "/console"))
    assert re.search(r'id="num-requests">4<', page)
    assert re.search(r"<td>336002</td><td>1</td>", page)
    assert "easydl_classify" in page and 'id="fact-ready" class="ok">ready' in page
    fragment = get(client, "/console/overview/charts")
    assert fragment.status_code == 200 and text(fragment).startswith('<section id="charts"')


def hostile_app(tmp_path, evil_logs=True):
    """Every value the server renders, made hostile: release, install root state, bundle names, logs."""
    cfg = cls_config(tmp_path, release=EVIL, root=str(tmp_path / "root"), log_dir=str(tmp_path / "logs"))
    bundle = Path(cfg.models["classifier"])
    yml = yaml.safe_load((bundle / "inference.yml").read_text())
    yml["Global"]["model_name"] = EVIL_IMG
    (bundle / "inference.yml").write_text(yaml.safe_dump(yml))
    (bundle / "manifest.json").write_text(json.dumps({"schema": 1, "name": EVIL, "task": EVIL_IMG}))
    deploy = tmp_path / "root" / DEPLOY
    deploy.mkdir(parents=True)
    (deploy / "state.json").write_text(
        json.dumps(
            {"release": EVIL, "runtime_kind": EVIL_IMG, "releases": {EVIL: {"installed_at": EVIL_IMG}, EVIL_IMG: {}}}
        )
    )
    app = create_app(cfg, engine_factory=fake_factory, gate=None)
    if evil_logs:
        (tmp_path / "logs" / "error.log").write_text(
            f"2026-01-02 03:04:05,678 [1] INFO visionpack.api: log_id={EVIL_IMG} route={EVIL} invalid-json {EVIL}\n"
            f"2026-01-02 03:04:05,678 [1] INFO visionpack.api: log_id=1 route=easydl_classify invalid-json {EVIL_IMG}\n"
        )
    return app


def test_nothing_hostile_reaches_a_page_unescaped(tmp_path, own_logging):
    client = hostile_app(tmp_path).test_client()
    pages = {
        p: text(get(client, p)) for p in ("/console", "/console/try", "/console/errors", "/console/overview/charts")
    }
    for path, page in pages.items():
        assert "<script>alert" not in page and "<img src=x" not in page, path
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages["/console"]
    )  # the release, in the header and the card
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["/console"]  # model name, task, runtime
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["/console/errors"]
    assert pages["/console"].count("<script") == 4  # the four static scripts, nothing else
    assert all(
        len(re.findall(r"<script", page)) == 4 for path, page in pages.items() if path != "/console/overview/charts"
    )


def test_the_errors_page_reads_the_deploys_log(tmp_path, logged_app):
    client = logged_app.test_client()
    bad = classify(client, "{broken").get_json()
    page = text(get(client, "/console/errors"))
    assert str(bad["log_id"]) in page and "<td>336002</td>" in page and "invalid-json" in page
    assert "The last 50 error answers" in page
    assert "The last 1 error answers" in text(get(client, "/console/errors?n=0"))
    assert "The last 500 error answers" in text(get(client, "/console/errors?n=999999"))
    assert "The last 50 error answers" in text(get(client, "/console/errors?n=abc"))


def test_without_a_log_directory_the_errors_page_says_so(client):
    page = text(get(client, "/console/errors"))
    assert "no log directory in the config" in page and 'id="errors-none"' in page


def test_security_headers_and_the_console_token(client):
    r = get(client, "/console")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{csrf.cookie_name(DEPLOY)}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = cookie.split("=", 1)[1].split(";", 1)[0]
    assert csrf.valid_token(token) and f'<meta name="csrf-token" content="{token}">' in text(r)
    again = get(client, "/console/try")  # the test client sends the cookie back
    assert "Set-Cookie" not in again.headers and f'content="{token}"' in text(again)
    client.set_cookie(csrf.cookie_name(DEPLOY), "forged<>")
    fresh = get(client, "/console")
    assert "Set-Cookie" in fresh.headers and "forged" not in text(fresh)


def test_static_files_are_open_and_hold_no_data(client):
    for name in ("console.js", "draw.js", "tryit.js", "gallery.js", "console.css", "logo.svg"):
        r = get(client, f"/console/static/{name}", env=REMOTE)  # the key form needs them, so no key needed
        assert r.status_code == 200, name
        assert r.headers["X-Content-Type-Options"] == "nosniff" and "Set-Cookie" not in r.headers


def test_a_refused_browser_gets_the_key_form_and_no_data(tmp_path, client, caplog):
    with caplog.at_level(logging.INFO, "visionpack"):
        r = get(client, "/console", env=REMOTE)
    page = text(r)
    assert r.status_code == 401 and "API key needed" in page and 'id="key-form"' in page
    assert DEPLOY not in page and "1.0.0" not in page and "fake_cls" not in page
    assert 'href="/console/try"' not in page  # not even which pages this deploy has
    assert "Set-Cookie" not in r.headers
    log_id = re.search(r'id="locked-log-id">(\d+)<', page).group(1)
    assert f"log_id={log_id} route=console_overview access-token-invalid peer=10.1.2.3" in caplog.text
    charts = get(client, "/console/overview/charts", env=REMOTE)
    assert charts.status_code == 401 and charts.get_json()["error_code"] == 110


def test_an_ops_key_opens_the_console_from_anywhere_another_scope_does_not(tmp_path, client):
    data = tmp_path / "data"
    ops, _ = store.create_key(data, ("ops",))
    infer, _ = store.create_key(data, ("infer",))
    r = get(client, "/console/try", env=REMOTE, headers={"X-API-Key": ops})
    assert r.status_code == 200 and 'id="try-form"' in text(r)
    r = get(client, "/console", env=REMOTE, headers={"X-API-Key": infer})
    assert r.status_code == 403 and "API key needed" in text(r) and "(answer 6," in text(r)
    store.set_policy(data, "ops", "key")  # now even this machine needs the key
    assert get(client, "/console").status_code == 401
    assert get(client, "/console", headers={"Authorization": f"Bearer {ops}"}).status_code == 200


def test_the_console_can_be_turned_off(tmp_path):
    client = create_app(cls_config(tmp_path, console=False), engine_factory=fake_factory, gate=None).test_client()
    assert get(client, "/console").status_code == 404
    assert get(client, "/console/static/console.js").status_code == 404
    assert classify(client, {"image": jpeg_b64()}).status_code == 200


# --- the static files: offline, no HTML built from data -------------------------------------


def sources() -> dict[str, str]:
    files = [*STATIC.iterdir(), *TEMPLATES.iterdir()]
    return {f.name: f.read_text(encoding="utf-8") for f in files if f.suffix in (".js", ".css", ".svg", ".html")}


def test_the_console_references_nothing_outside_the_deploy():
    for name, src in sources().items():
        for url in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", src):
            assert url.startswith("http://www.w3.org/2000/svg"), (name, url)  # the SVG namespace only
        assert "@import" not in src and "fetch('http" not in src, name


def test_scripts_never_build_html_from_data():
    for name, src in sources().items():
        if not name.endswith(".js"):
            continue
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert forbidden not in src, (name, forbidden)
    # The one parser: DOMParser on pages and fragments the server rendered (console.js).
    assert [n for n, s in sources().items() if "DOMParser" in s] == ["console.js"]
