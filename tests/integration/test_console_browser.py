"""The operator console in a real browser: Debian's headless Chromium, driven over WebDriver by
these tests, against real gunicorn (the product's gunicorn_conf.py and HTTP front) serving the
three demo deploys with the real models and a real license.

One private network namespace (netns_lab.py) holds the three services, chromedriver and
Chromium, so the browser is, to the services, this machine (``127.0.0.1``) or a client on the
network (``10.9.9.1``). The test process stays outside and reaches the driver and the services
through a forwarder, as an API client on the server's loopback. The services start once for the
module (in parallel, ~10 s); each test is a few seconds of browser work.

Screenshots of every page land in the module's tmp dir (the test artifacts); with
``VISIONPACK_UPDATE_SCREENSHOTS=1`` they are also copied to docs/console/ (the README's).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from netns_lab import PEER, Netns
from w3c_browser import Browser, installed, start_driver, wait_driver

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SAMPLES = REPO / "package" / "samples"
DRIVER_PORT = 9515
WIDTH, WINDOW_HEIGHT = 1360, 1000
RELEASES = ("1.0.0", "1.1.0")  # kept releases in state.json; the services run the newer one
DEPLOYS = {
    "demo-classify": ("classification", 8701, {"classifier": "efficientnet_lite0_imagenet"}, {}),
    "demo-keypoint": ("keypoint", 8702, {"detector": "person_det_synthetic", "keypoint": "tinypose_synthetic"}, {}),
    "demo-face": (
        "face",
        8703,
        {
            "detector_pnet": "mtcnn_pnet",
            "detector_rnet": "mtcnn_rnet",
            "detector_onet": "mtcnn_onet",
            "feature": "dlib_resnet_face",
        },
        {"index_type": "Flat", "metric": "IP", "rec_threshold": 0.9},
    ),
}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@dataclass
class Lab:
    root: Path
    shots: Path
    browser: Browser
    host_ports: dict[int, int]  # port inside the namespace -> forwarder's port on this host
    answers: dict = field(default_factory=dict)  # what earlier tests sent, for later ones

    def page(self, deploy: str, path: str = "/console", remote: bool = False) -> str:
        """A URL as the browser (inside the namespace) reaches it: from loopback or from 10.9.9.1."""
        return f"http://{PEER if remote else '127.0.0.1'}:{DEPLOYS[deploy][1]}{path}"

    def call(self, deploy: str, path: str, body: dict | bytes | None = None) -> tuple[int, dict]:
        """A client's request (from the server's loopback, through the forwarder); bytes are sent as they are."""
        url = f"http://127.0.0.1:{self.host_ports[DEPLOYS[deploy][1]]}{path}"
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(req, timeout=120) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, json.loads(raw)

    def search(self, image: Path, index: str = "default") -> list[list[str]]:
        """The labels a client's face search returns, per face found."""
        status, body = self.call(
            "demo-face", "/face-recognition-infer", {"image": b64(image), "indexKey": index, "visualize": False}
        )
        assert status == 200, body
        return [[h["label"] for h in f["recResults"]] for f in body["result"]["faces"]]

    def shot(self, name: str) -> Path:
        """The whole page from its top (the window grows to the page's height for the picture)."""
        b = self.browser
        height = b.execute("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
        b.resize(WIDTH, min(max(WINDOW_HEIGHT, height + 140), 2600))
        try:
            path = b.screenshot(self.shots / f"{name}.png")
        finally:
            b.resize(WIDTH, WINDOW_HEIGHT)
        if os.environ.get("VISIONPACK_UPDATE_SCREENSHOTS") == "1":
            docs = REPO / "docs" / "console"
            docs.mkdir(exist_ok=True)
            shutil.copyfile(path, docs / path.name)
        return path

    def apikey(self, *args: str) -> dict:
        proc = subprocess.run(
            [
                sys.executable,
                str(REPO / "package" / "Install" / "install.py"),
                "--root",
                str(self.root),
                "apikey",
                *args,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)


def run(*cmd: object, **kw) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def make_license(root: Path) -> Path:
    """A vendor key and a 30-day, 64-instance license for this machine (the vendor's own tool)."""
    vendor = root.parent / "vendor"
    lic_dir = root / "licenses"
    lic_dir.mkdir(parents=True)
    run(sys.executable, REPO / "vendor" / "visionpack_vendor.py", "keygen", "--out", vendor / "keys")
    run(
        sys.executable,
        "-c",
        f"from visionpack.licensing.admin import write_request; write_request({str(vendor / 'req.json')!r})",
        env={**os.environ, "PYTHONPATH": str(REPO / "package")},
    )
    run(
        sys.executable,
        REPO / "vendor" / "visionpack_vendor.py",
        "issue",
        "--key",
        next((vendor / "keys").glob("*.key")),
        "--request",
        vendor / "req.json",
        "--out",
        lic_dir / "license.lic",
        "--days",
        "30",
        "--customer",
        "console-tests",
        "--instances",
        "64",
    )
    shutil.copy2(next((vendor / "keys").glob("*.pub")), lic_dir)
    return lic_dir


def write_deploy(root: Path, deploy: str, lic_dir: Path) -> Path:
    """<root>/<deploy> as install.py lays it out, as far as the service and 'apikey' look."""
    service, port, models, options = DEPLOYS[deploy]
    d = root / deploy
    for sub in ("data", "logs", "run"):
        (d / sub).mkdir(parents=True)
    history = [
        {"release": v, "at": f"2025-0{i + 1}-01T00:00:00Z", "op": op}
        for i, (v, op) in enumerate(zip(RELEASES, ("install", "upgrade")))
    ]
    state = {
        "schema": 2,
        "service": service,
        "release": RELEASES[-1],
        "runtime_kind": "process",
        "desired": "running",
        "host": "0.0.0.0",
        "port": port,
        "workers": 1,
        "history": history,
        "releases": {h["release"]: {"installed_at": h["at"], "activated_at": h["at"], "venv": "test"} for h in history},
    }
    (d / "state.json").write_text(json.dumps(state))
    cfg = {
        "deploy": deploy,
        "service": service,
        "host": "0.0.0.0",
        "port": port,
        "workers": 1,
        "threads_per_worker": 1,
        "models": {role: str(REPO / "models" / b) for role, b in models.items()},
        "options": options,
        "release": RELEASES[-1],
        "root": str(root),
        "data_dir": str(d / "data"),
        "run_dir": str(d / "run"),
        "log_dir": str(d / "logs"),
        "license_dir": str(lic_dir),
    }
    (d / "config.yml").write_text(yaml.safe_dump(cfg))
    return d


def wait_ready(lab_ports: dict[int, int], procs: dict[str, subprocess.Popen], root: Path) -> None:
    deadline = time.monotonic() + 300
    for deploy, (_s, port, _m, _o) in DEPLOYS.items():
        while True:
            assert procs[deploy].poll() is None, (root / deploy / "console.log").read_text()[-3000:]
            try:
                with _OPENER.open(f"http://127.0.0.1:{lab_ports[port]}/ready", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{deploy} not ready in 300 s"
            time.sleep(0.3)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    assert installed(), "Chromium and chromedriver are missing: run 'bash .ci/browser.sh' (Debian's packages)"
    base = tmp_path_factory.mktemp("console")
    root = base / "root"
    lic_dir = make_license(root)
    ns = Netns()
    procs: dict[str, subprocess.Popen] = {}
    driver = None
    browser = None
    try:
        for deploy in DEPLOYS:
            d = write_deploy(root, deploy, lic_dir)
            env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")}
            env.update(
                {
                    "VISIONPACK_CONFIG": str(d / "config.yml"),
                    "PYTHONPATH": str(REPO / "package"),
                    "GLOG_minloglevel": "2",
                }
            )
            procs[deploy] = ns.popen(
                [
                    str(VENV_BIN / "gunicorn"),
                    "-c",
                    str(REPO / "start" / "gunicorn_conf.py"),
                    "visionpack.api.app:create_app()",
                ],
                env=env,
                cwd=str(d),
                stdin=subprocess.DEVNULL,
                stdout=open(d / "console.log", "wb"),  # noqa: SIM115  (the child writes it for its whole life)
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        driver = start_driver(ns.popen, DRIVER_PORT, base / "chromedriver.log")
        ports = ns.forward(DRIVER_PORT, *(p for _s, p, _m, _o in DEPLOYS.values()))
        wait_driver(f"http://127.0.0.1:{ports[DRIVER_PORT]}")
        wait_ready(ports, procs, root)
        profile = base / "profile"  # empty: no state from any other run
        profile.mkdir()
        browser = Browser(f"http://127.0.0.1:{ports[DRIVER_PORT]}", profile)
        yield Lab(root, base / "screenshots", browser, ports)
    finally:
        if browser is not None:
            browser.quit()
        for proc in [*procs.values(), *([driver] if driver else [])]:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        ns.close()


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> Path:
    """Obama (left) and Biden (right) side by side: an image with two faces to choose from."""
    import cv2
    import numpy as np

    left, right = (cv2.imread(str(SAMPLES / "faces" / f)) for f in ("obama_2.jpg", "biden.jpg"))
    h = 480
    left, right = (cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h)) for im in (left, right))
    gap = np.full((h, 60, 3), 255, np.uint8)
    path = tmp_path_factory.mktemp("images") / "obama-and-biden.jpg"
    cv2.imwrite(str(path), np.hstack([left, gap, right]))
    return path


def upload(lab: Lab, css: str, image: Path) -> None:
    lab.browser.type(css, str(image))


# --- overview -------------------------------------------------------------------------------


def test_overview_shows_the_deploy_and_live_numbers(lab):
    b = lab.browser
    for _ in range(3):
        assert (
            lab.call(
                "demo-classify", "/demo-classify/ImageClassification", {"image": b64(SAMPLES / "cat.jpg"), "top_num": 1}
            )[0]
            == 200
        )
    assert lab.call("demo-classify", "/demo-classify/ImageClassification", b"{not json")[1]["error_code"] == 336002
    body = lab.call("demo-classify", "/demo-classify/ImageClassification", {"top_num": 1})[1]
    assert body["error_code"] == 336006
    lab.answers["missing_image_log_id"] = str(body["log_id"])

    b.get(lab.page("demo-classify"))
    assert b.wait_text("#fact-deploy", "demo-classify")
    assert b.text("#fact-release") == "1.1.0" and b.text("#fact-ready").startswith("ready")
    assert b.text("#fact-workers").startswith("1 configured, 1 running (pids ")
    releases = b.text("#releases")
    assert "1.1.0 current" in releases and "1.0.0 previous" in releases
    assert "paddle" in b.text("#models") and "efficientnet_lite0_imagenet" in b.text("#models")
    assert b.text("#lic-customer") == "console-tests"
    assert b.text("#lic-days").startswith(("29 ", "30 "))
    assert "in use / 64 licensed" in b.text("#lic-instances")
    assert int(b.text("#num-requests")) >= 5
    codes = b.text("#error-codes")
    assert "336002" in codes and "336006" in codes
    # Live: the page polls while a client keeps sending (now and then a bad request); the
    # numbers grow and the charts draw lines of several samples.
    before = int(b.text("#num-requests"))
    stop = threading.Event()

    def client() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = {"image": b64(SAMPLES / "coffee.jpg"), "topk": 2} if n % 5 else {"topk": 2}
            lab.call("demo-classify", "/image-classification", body)
            stop.wait(0.3)

    sender = threading.Thread(target=client, daemon=True)
    sender.start()
    try:
        b.wait("the request count to grow", lambda: int(b.text("#num-requests")) >= before + 4, timeout=30)
        b.wait(
            "chart lines of several samples",
            lambda: (
                b.execute(
                    "return Math.max(0, ...[...document.querySelectorAll('#charts polyline')]"
                    ".map(p => p.points.numberOfItems))"
                )
                >= 4
            ),
            timeout=40,
        )
    finally:
        stop.set()
        sender.join(30)
    assert "422" in b.text("#error-codes")  # PaddleX's missing image, from the client above
    assert "p50" in b.text("#latency") and " ms" in b.text("#latency")
    lab.shot("overview")


# --- try it ---------------------------------------------------------------------------------


def run_try(lab: Lab, deploy: str, image: Path, params: dict | None = None) -> dict:
    b = lab.browser
    b.get(lab.page(deploy, "/console/try"))
    b.wait("the try form", lambda: b.find("#try-file"))
    upload(lab, "#try-file", image)
    for name, value in (params or {}).items():
        b.type(f'#try-form input[name="{name}"]', str(value))
    b.wait("the send button", lambda: not b.prop("#try-run", "disabled"))
    b.click("#try-run")
    b.wait("an answer", lambda: "HTTP 200" in b.text("#try-status") or "error" in b.text("#try-status"), timeout=120)
    assert "HTTP 200" in b.text("#try-status"), b.text("#try-status")
    return json.loads(b.prop("#try-json", "textContent"))


def test_try_classification_draws_top_k_bars_and_the_json(lab):
    answer = run_try(lab, "demo-classify", SAMPLES / "cat.jpg", {"top_num": 3})
    assert len(answer["results"]) == 3 and "cat" in answer["results"][0]["name"]
    b = lab.browser
    assert b.prop("#try-canvas", "dataset")["drawn"] == "3"
    bars = b.find_all("#try-list li.bar")
    assert len(bars) == 3 and answer["results"][0]["name"] in b.text("#try-list")
    lab.shot("try-classification")


def test_try_keypoints_draws_skeletons(lab):
    answer = run_try(lab, "demo-keypoint", SAMPLES / "pose" / "figures.jpg")
    persons = answer["result"]["persons"]
    assert persons and len(persons[0]["kpts"]) == 17
    assert int(lab.browser.prop("#try-canvas", "dataset")["drawn"]) == len(persons)
    assert "person 1: detector" in lab.browser.text("#try-list")
    lab.shot("try-keypoint")


def test_try_face_draws_known_and_unknown_faces(lab, two_faces):
    status, body = lab.call(
        "demo-face",
        "/face-recognition-index-add",
        {"imageLabelPairs": [{"image": b64(SAMPLES / "faces" / "obama_1.jpg"), "label": "Barack_Obama"}]},
    )
    assert status == 200, body
    answer = run_try(lab, "demo-face", two_faces)
    labels = sorted(tuple(h["label"] for h in f["recResults"][:1]) for f in answer["result"]["faces"])
    assert labels == [(), ("Barack_Obama",)]
    b = lab.browser
    assert b.prop("#try-canvas", "dataset")["drawn"] == "2"
    assert len(b.find_all("#try-list li.known")) == 1 and len(b.find_all("#try-list li.unknown")) == 1
    lab.shot("try-face")


# --- face gallery ---------------------------------------------------------------------------


def test_gallery_add_and_remove_change_what_a_client_finds(lab, two_faces):
    biden = SAMPLES / "faces" / "biden.jpg"
    assert "Joe_Biden" not in sum(lab.search(biden), [])
    b = lab.browser
    b.get(lab.page("demo-face", "/console/gallery"))
    b.wait(
        "Obama's thumbnail",
        lambda: b.execute(
            "const i = document.querySelector('[data-label=\"Barack_Obama\"] img'); return i && i.naturalWidth > 0;"
        ),
    )
    # Add from the two-face picture, choosing Biden (the face on the right).
    upload(lab, "#add-file", two_faces)
    b.wait("two faces to choose from", lambda: len(b.find_all("#add-faces input[type=radio]")) == 2, timeout=120)
    right = b.execute("""
        const labels = [...document.querySelectorAll('#add-faces label.choice')];
        const x = labels.map(l => Number(l.textContent.split('box ')[1].split(',')[0]));
        return x.indexOf(Math.max(...x));""")
    b.click(f'#add-faces input[value="{right}"]')
    b.type("#add-label", "Joe_Biden")
    b.click("#add-run")
    b.wait_text("#gallery-msg", "added face", timeout=120)
    assert b.wait(
        "Biden's thumbnail",
        lambda: b.execute(
            "const i = document.querySelector('[data-label=\"Joe_Biden\"] img'); return i && i.naturalWidth > 0;"
        ),
    )
    assert lab.search(biden)[0][:1] == ["Joe_Biden"]
    assert lab.search(SAMPLES / "faces" / "obama_2.jpg")[0][:1] == [
        "Barack_Obama"
    ]  # Biden's face was enrolled, not Obama's
    lab.shot("gallery")
    # Remove (two clicks: the first asks).
    b.click('[data-label="Joe_Biden"] button[data-remove-face]')
    b.click('[data-label="Joe_Biden"] button[data-remove-face]')
    b.wait_text("#gallery-msg", "removed face")
    assert "Joe_Biden" not in sum(lab.search(biden), [])
    b.wait("Biden gone from the page", lambda: not b.find_all('[data-label="Joe_Biden"]'))


def test_gallery_pages_a_large_index_and_searches_with_an_image(lab):
    pairs = [
        {
            "image": b64(SAMPLES / "faces" / ("collins.jpg" if i % 2 else "obama_1.jpg")),
            "label": "Eileen_Collins" if i % 2 else "Barack_Obama",
        }
        for i in range(26)
    ]
    status, body = lab.call("demo-face", "/face-recognition-index-build", {"imageLabelPairs": pairs})
    assert status == 200 and len(body["result"]["idMap"]) == 26, body
    key = body["result"]["indexKey"]
    b = lab.browser
    b.get(lab.page("demo-face", "/console/gallery"))
    b.wait("the new index in the list", lambda: key in b.text("#index"))
    b.execute(
        "const s = document.getElementById('index'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));", key
    )
    b.wait_text("#page-info", "1–24 of 26")
    b.wait(
        "24 thumbnails",
        lambda: (
            b.execute("return [...document.querySelectorAll('#faces img')].filter(i => i.naturalWidth > 0).length")
            == 24
        ),
    )
    b.click("#page-next")
    b.wait_text("#page-info", "25–26 of 26")
    upload(lab, "#search-file", SAMPLES / "faces" / "collins.jpg")
    b.wait_text("#search-list", "Eileen_Collins", timeout=120)


# --- what is refused ------------------------------------------------------------------------


def test_a_remote_browser_needs_a_key_with_the_right_scopes(lab):
    b = lab.browser
    b.get(lab.page("demo-face", remote=True))
    b.wait_text("#locked", "API key needed")
    page = b.execute("return document.body.textContent")
    assert "demo-face" not in page and "console-tests" not in page and "1.1.0" not in page
    # A gallery write from this address without a key: refused by the API itself.
    status = b.execute_async("""
        const done = arguments[arguments.length - 1];
        fetch('/demo-face/FaceGallery/remove', {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({user_id: 'Barack_Obama'})}).then(r => r.json().then(j => done([r.status, j.error_code])));""")  # noqa: E501
    assert status == [401, 110]
    lab.shot("locked")
    ops = lab.apikey("create", "demo-face", "--scope", "ops", "--name", "console-ops")["key"]
    both = lab.apikey(
        "create", "demo-face", "--scope", "ops", "--scope", "gallery", "--scope", "infer", "--name", "console-admin"
    )["key"]
    b.type("#key-input", ops)
    b.click("#key-use")
    b.wait_text("#fact-deploy", "demo-face")
    assert b.text("#lic-customer") == "console-tests"
    b.click('nav a[href="/console/gallery"]')  # the key rides along (links cannot send a header)
    b.wait_text("#gallery-msg", "error 6")  # ops alone does not list the gallery
    b.click("#key-forget")  # reloads /console/gallery without a key: locked again
    b.wait_text("#locked", "API key needed")
    b.type("#key-input", both)
    b.click("#key-use")
    b.wait("the gallery with the admin key", lambda: b.find_all('[data-label="Barack_Obama"] img'))
    b.click('nav a[href="/console/overview"]')
    b.wait_text("#fact-deploy", "demo-face")
    assert "peer=10.9.9.1" in (lab.root / "demo-face" / "logs" / "error.log").read_text(errors="replace")


def test_another_origin_cannot_write_and_the_console_token_is_checked(lab):
    b = lab.browser
    # A page of another origin on the operator's machine (another deploy's port stands in for
    # any site the browser visits; /health, a page without the console's CSP) POSTs to the
    # gallery the way a CSRF page would: no-cors, text/plain, no preflight.
    b.get(lab.page("demo-classify", "/health"))
    target = lab.page("demo-face", "/face-recognition-index-add")
    body = json.dumps({"imageLabelPairs": [{"image": b64(SAMPLES / "faces" / "collins.jpg"), "label": "Mallory"}]})
    b.execute_async(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: arguments[1]})
          .then(() => done('sent'), e => done(String(e)));""",  # noqa: E501
        target,
        body,
    )
    status, listed = lab.call("demo-face", "/demo-face/FaceGallery/list", {"user_id": "Mallory"})
    assert status == 200 and listed["result"]["face_num"] == 0
    log = (lab.root / "demo-face" / "logs" / "error.log").read_text(errors="replace")
    assert "reason=cross-site" in log
    # The console's own page, same origin, but a write without its token: refused too.
    b.get(lab.page("demo-face", "/console/gallery"))
    b.wait("the gallery page", lambda: b.find("#gallery"))
    answer = b.execute_async("""
        const done = arguments[arguments.length - 1];
        fetch('/demo-face/FaceGallery/remove', {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({user_id: 'Barack_Obama'})}).then(r => r.json().then(j => done([r.status, j.error_code])));""")  # noqa: E501
    assert answer == [403, 6]
    assert "Barack_Obama" in sum(lab.search(SAMPLES / "faces" / "obama_2.jpg"), [])


def test_recent_errors_lists_the_last_error_answers(lab):
    b = lab.browser
    b.get(lab.page("demo-classify", "/console/errors"))
    table = b.wait_text("#errors", lab.answers["missing_image_log_id"])
    assert "336006" in table and "336002" in table and "missing-parameter" in table
    lab.shot("errors")
    b.get(lab.page("demo-face", "/console/errors"))
    table = b.wait_text("#errors", "cross-site")
    assert "access-token-invalid" in table and "no-permission" in table
