"""Cross-site refusal (api/csrf.py): the decision tables, then the answers of every POST route
through Flask: another origin and a missing or wrong console token get 6/403 in the route's
dialect, logged with the reason; API clients that send neither header are unaffected."""

from __future__ import annotations

import json
import logging

import pytest

from tests.unit.api.console.console_fakes import DEPLOY, LOCAL
from tests.unit.face_fakes import RED, b64, picture
from tests.unit.fakes import jpeg_b64
from visionpack.api import csrf
from visionpack.errors import NoPermission

TOKEN = "A" * 43
OTHER = "B" * 43


@pytest.mark.parametrize(
    "origin, host, same",
    [
        ("http://127.0.0.1:8703", "127.0.0.1:8703", True),
        ("http://LOCALHOST:8703", "localhost:8703", True),
        ("http://127.0.0.1:8703/", "127.0.0.1:8703", True),
        ("http://example.com", "example.com", True),  # no port: the scheme's default on both sides
        ("http://example.com:80", "example.com", True),
        ("https://example.com", "example.com", True),  # behind a TLS proxy on 443
        ("https://example.com:8443", "example.com:8443", True),
        ("http://127.0.0.1:8701", "127.0.0.1:8703", False),  # another deploy's port: another origin
        ("http://127.0.0.1", "127.0.0.1:8703", False),
        ("http://10.0.0.9:8703", "127.0.0.1:8703", False),
        ("https://example.com", "example.com:80", False),
        ("http://evil.example", "example.com", False),
        ("http://example.com.evil.example", "example.com", False),
        ("ftp://example.com", "example.com", False),
        ("http://example.com/path", "example.com", False),
        ("http://example.com:99999", "example.com", False),  # not a port
        ("http://", "example.com", False),
        ("http://example.com", "", False),
        ("http://example.com", "example.com:x", False),
        ("not a url", "example.com", False),
    ],
)
def test_same_origin(origin, host, same):
    assert csrf.same_origin(origin, host) is same


@pytest.mark.parametrize(
    "origin, fetch_site, refused",
    [
        (None, None, None),  # curl, SDKs, EasyDL and PaddleX clients: neither header
        (None, "same-origin", None),
        (None, "none", None),  # the user typed it
        ("http://svc:8703", "same-origin", None),
        ("http://svc:8703", None, None),
        (None, "cross-site", "Sec-Fetch-Site is cross-site"),
        (None, "same-site", "Sec-Fetch-Site is same-site"),
        (None, " Cross-Site ", "Sec-Fetch-Site is cross-site"),
        ("http://svc:8703", "cross-site", "Sec-Fetch-Site is cross-site"),  # the browser's word wins
        ("null", None, "Origin is null"),
        ("http://other:8703", None, "Origin 'http://other:8703' is not this service"),
        ("http://other:8703", "same-origin", "is not this service"),
        ("<script>" * 100, None, "is not this service"),
    ],
)
def test_cross_site_decision_table(origin, fetch_site, refused):
    why = csrf.cross_site_reason(origin, fetch_site, "svc:8703")
    if refused is None:
        assert why is None
    else:
        assert refused in why
        assert len(why) < 200  # a preview of the header, never all of it


@pytest.mark.parametrize(
    "cookie, header, ok",
    [
        (None, None, True),  # not the console: nothing to check
        (TOKEN, TOKEN, True),
        (TOKEN, None, False),  # a console browser, but the request did not come from its page
        (None, TOKEN, False),
        (TOKEN, OTHER, False),
        ("short", "short", False),  # not a token this service makes
        ("", "", False),
        (TOKEN + "!", TOKEN + "!", False),
    ],
)
def test_console_token_decision_table(cookie, header, ok):
    assert (csrf.token_reason(cookie, header) is None) is ok


def test_tokens_and_cookie_names():
    token = csrf.new_token()
    assert csrf.valid_token(token) and token != csrf.new_token()
    assert not csrf.valid_token(None)
    assert csrf.cookie_name("demo-face") == "vp_console_demo-face"
    assert csrf.cookie_name("a b;c") == "vp_console_a_b_c"


def test_check_raises_no_permission_with_the_reason():
    with pytest.raises(NoPermission) as exc:
        csrf.check({"Origin": "http://evil", "Host": "svc"}, {}, DEPLOY)
    assert exc.value.reason == "cross-site" and exc.value.easydl_code == 6 and exc.value.http_status == 403
    with pytest.raises(NoPermission) as exc:
        csrf.check({"Host": "svc"}, {csrf.cookie_name(DEPLOY): TOKEN}, DEPLOY)
    assert exc.value.reason == "console-token"
    csrf.check({"Host": "svc", csrf.TOKEN_HEADER: TOKEN}, {csrf.cookie_name(DEPLOY): TOKEN}, DEPLOY)
    csrf.check(
        {"Host": "svc", csrf.TOKEN_HEADER: TOKEN},
        {csrf.cookie_name("another-deploy"): OTHER, csrf.cookie_name(DEPLOY): TOKEN},
        DEPLOY,
    )


# --- through the app ------------------------------------------------------------------------


def classify(client, path=f"/{DEPLOY}/ImageClassification", headers=None, cookie=None):
    if cookie is not None:
        client.set_cookie(csrf.cookie_name(DEPLOY), cookie)
    body = {"image": jpeg_b64(), "top_num": 1} if path.startswith(f"/{DEPLOY}") else {"image": jpeg_b64(), "topk": 1}
    return client.post(
        path, data=json.dumps(body), content_type="application/json", headers=headers or {}, environ_base=LOCAL
    )


def test_api_clients_without_browser_headers_are_unaffected(client):
    assert classify(client).status_code == 200
    assert classify(client, "/image-classification").status_code == 200


def test_another_origin_is_refused_in_both_dialects(client, caplog):
    with caplog.at_level(logging.INFO, "visionpack"):
        r = classify(client, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert r.get_json() == {
        "log_id": r.get_json()["log_id"],
        "error_code": 6,
        "error_msg": "No permission to access data",
    }
    assert "reason=cross-site" in caplog.text and str(r.get_json()["log_id"]) in caplog.text
    r = classify(client, "/image-classification", headers={"Sec-Fetch-Site": "cross-site"})
    body = r.get_json()
    assert (r.status_code, body["errorCode"]) == (403, 403) and "Sec-Fetch-Site is cross-site" in body["errorMsg"]


def test_the_simple_request_a_csrf_page_can_send_is_refused_before_anything_runs(client, cls_app):
    # text/plain and no-cors: a browser sends it without asking; Origin says where it came from.
    r = client.post(
        f"/{DEPLOY}/ImageClassification",
        data=json.dumps({"image": jpeg_b64()}),
        content_type="text/plain",
        headers={"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},
        environ_base=LOCAL,
    )
    assert r.get_json()["error_code"] == 6
    assert 'code="6"' in cls_app.test_client().get("/metrics", environ_base=LOCAL).get_data(as_text=True)


def test_the_same_origin_is_served(client):
    assert classify(client, headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_a_console_browser_must_send_its_token(client, caplog):
    with caplog.at_level(logging.INFO, "visionpack"):
        r = classify(client, cookie=TOKEN)
    assert (r.status_code, r.get_json()["error_code"]) == (403, 6)
    assert "reason=console-token" in caplog.text
    assert classify(client, headers={csrf.TOKEN_HEADER: OTHER}, cookie=TOKEN).status_code == 403
    r = classify(client, headers={csrf.TOKEN_HEADER: TOKEN, "Origin": "http://localhost"}, cookie=TOKEN)
    assert r.status_code == 200


def test_a_token_without_its_cookie_is_refused(client):
    assert classify(client, headers={csrf.TOKEN_HEADER: TOKEN}).status_code == 403


def test_gallery_writes_are_protected_too(face_client):
    body = json.dumps({"imageLabelPairs": [{"image": b64(picture(RED)), "label": "x"}]})
    r = face_client.post(
        "/face-recognition-index-add",
        data=body,
        content_type="application/json",
        headers={"Origin": "http://evil.example"},
        environ_base=LOCAL,
    )
    assert (r.status_code, r.get_json()["errorCode"]) == (403, 403)
    r = face_client.post("/demo-face/FaceGallery/list", data="{}", content_type="application/json", environ_base=LOCAL)
    assert r.get_json()["result"]["face_num"] == 0  # nothing was added
