"""The scale-out lab: face deploys as "servers" on their own loopback addresses, HAProxy in front, load.

Used by tests/e2e/test_scaleout.py and benchmarks/bench_scaleout.py. Each server is its own
install root (as on separate machines: its own license copy, release and data directory) whose
``demo-face`` listens on 127.0.0.N -- separate loopback addresses rather than network
namespaces, because the license binds the machine's fingerprint, which a namespace's own
interfaces would change. They share one PostgreSQL gallery (tests/postgres_cluster.py).
HAProxy (Debian's, ``.ci/scaleout.sh``) balances round-robin with health checks on ``/ready``.

The load: client threads adding (EasyDL ``FaceGallery/add``, a unique label and image each),
removing (by label) and searching, every outcome written to a ``Ledger``: acknowledged,
refused by the server with an error code, or unknown (the answer never came: a node killed
mid-request). Each label's image is a sample face photo transformed by amounts drawn from the
label, so each label has its own vector and a search with the same image finds it first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEPLOY = "demo-face"
GROUP = "scaleout"
ERR_GALLERY_UNAVAILABLE = 336101
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


SAMPLES = Path(__file__).resolve().parents[1] / "package" / "samples" / "faces"
_BASES: list[np.ndarray] = []


def image_for(label: str) -> str:
    """A JPEG (base64) of a real face unique to ``label``: one of the sample photos, 240 px, turned,
    scaled, shifted, lit and noised by amounts drawn from the label, so its vector is its own
    and a search with the same image finds this label first (score 1)."""
    import cv2

    if not _BASES:
        for path in sorted(SAMPLES.glob("*.jpg")):
            img = cv2.imread(str(path))
            f = 240 / max(img.shape[:2])
            _BASES.append(cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA))
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little"))
    base = _BASES[int(rng.integers(len(_BASES)))]
    h, w = base.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-6, 6)), float(rng.uniform(0.92, 1.08)))
    m[:, 2] += rng.uniform(-6, 6, 2)
    img = cv2.warpAffine(base, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    img = np.clip(img.astype(np.float32) + rng.uniform(-20, 20) + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


def post(host: str, port: int, path: str, doc: dict[str, Any], timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body); (0, {}) when no answer came (connection refused or reset, timeout)."""
    req = urllib.request.Request(
        f"http://{host}:{port}{path}", data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def get(host: str, port: int, path: str, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    try:
        with _OPENER.open(f"http://{host}:{port}{path}", timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def search(host: str, port: int, label: str) -> str | None:
    """The top label a search with ``label``'s image finds; None for no match or a failure."""
    status, body = post(host, port, f"/{DEPLOY}/FaceRecognition", {"image": image_for(label), "group_id": GROUP})
    if status != 200 or "error_code" in body:
        return None
    faces = body.get("result", {}).get("face_list") or []
    users = faces[0].get("user_list") if faces else None
    return users[0]["user_id"] if users else None


@dataclass
class Ledger:
    """What the clients were told, per label."""

    acked_add: set[str] = field(default_factory=set)
    faceless: set[str] = field(default_factory=set)  # acknowledged adds without a face found: not searchable
    refused_add: set[str] = field(default_factory=set)  # an error code (336101: the database was down)
    unknown_add: set[str] = field(default_factory=set)  # no answer: the server may have committed it
    acked_remove: set[str] = field(default_factory=set)
    unsure_remove: set[str] = field(default_factory=set)  # refused or unanswered: either way
    codes: dict[str, int] = field(default_factory=dict)  # "op:status:error_code" -> count
    ops: list[tuple[float, str, float, bool]] = field(default_factory=list)  # (start, op, seconds, ok)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, op: str, status: int, body: dict[str, Any], t0: float, ok: bool) -> None:
        with self.lock:
            key = f"{op}:{status}:{body.get('error_code', 0)}"
            self.codes[key] = self.codes.get(key, 0) + 1
            self.ops.append((t0, op, time.monotonic() - t0, ok))

    def failures(self, op: str, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for t, o, _, ok in self.ops if o == op and not ok and since <= t < until)

    def successes(self, op: str, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for t, o, _, ok in self.ops if o == op and ok and since <= t < until)

    def must_exist(self) -> set[str]:
        return self.acked_add - self.acked_remove - self.unsure_remove

    def may_exist(self) -> set[str]:
        return (self.acked_add | self.unknown_add | self.refused_add) - self.acked_remove


class Load:
    """``clients`` threads of adds, removes and searches through ``host:port`` until stopped."""

    def __init__(
        self,
        host: str,
        port: int,
        ledger: Ledger,
        clients: int = 8,
        tag: str = "",
        seed: int = 0,
        mix: tuple[float, float] = (0.45, 0.6),
        known: list[str] | None = None,
    ) -> None:
        """``mix``: a roll below mix[0] adds, below mix[1] removes, else searches; ``known``:
        labels a client may search before it added any (benchmarks' search-only load)."""
        self.host, self.port, self.ledger = host, port, ledger
        self.mix, self.known = mix, known or []
        self.stop_flag = threading.Event()
        self.threads = [
            threading.Thread(target=self._client, args=(f"{tag}c{n}", random.Random(seed * 100 + n)), daemon=True)
            for n in range(clients)
        ]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(120)

    def _client(self, name: str, rng: random.Random) -> None:
        mine: list[str] = []
        n = 0
        add_below, remove_below = self.mix
        led = self.ledger
        while not self.stop_flag.is_set():
            roll = rng.random()
            t0 = time.monotonic()
            if roll < add_below or not (mine or self.known):
                label = f"{name}-{n}"
                n += 1
                status, body = post(
                    self.host,
                    self.port,
                    f"/{DEPLOY}/FaceGallery/add",
                    {"image": image_for(label), "group_id": GROUP, "user_id": label},
                )
                ok = status == 200 and "error_code" not in body
                with led.lock:
                    if ok:
                        led.acked_add.add(label)
                        mine.append(label)
                        if not body.get("result", {}).get("face_found"):
                            led.faceless.add(label)
                    elif status == 0 or status >= 500 and "error_code" not in body:
                        led.unknown_add.add(label)  # the balancer's 502/504 or no answer at all
                    else:
                        led.refused_add.add(label)
                led.note("add", status, body, t0, ok)
            elif roll < remove_below and mine:
                label = mine.pop(rng.randrange(len(mine)))
                status, body = post(
                    self.host, self.port, f"/{DEPLOY}/FaceGallery/remove", {"group_id": GROUP, "user_id": label}
                )
                ok = status == 200 and "error_code" not in body
                with led.lock:
                    (led.acked_remove if ok else led.unsure_remove).add(label)
                led.note("remove", status, body, t0, ok)
            else:
                label = rng.choice(mine or self.known)
                status, body = post(
                    self.host,
                    self.port,
                    f"/{DEPLOY}/FaceRecognition",
                    {"image": image_for(label), "group_id": GROUP},
                )
                ok = status == 200 and "error_code" not in body
                led.note("search", status, body, t0, ok)


def haproxy_config(port: int, servers: list[tuple[str, int]], stats_port: int | None = None) -> str:
    lines = [
        "global",
        "    maxconn 512",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 120s",
        "    timeout server 120s",
        "    retries 2",
        "    option redispatch",  # a connection refused (a node down) is retried on another node
        "frontend faces",
        f"    bind 127.0.0.1:{port}",
        "    default_backend faces",
        "backend faces",
        "    balance roundrobin",
        "    option httpchk GET /ready",
        "    http-check expect status 200",
        "    default-server inter 300ms fall 2 rise 2",
        *(f"    server n{i} {h}:{p} check" for i, (h, p) in enumerate(servers)),
    ]
    if stats_port:
        lines += ["frontend stats", f"    bind 127.0.0.1:{stats_port}", "    stats enable", "    stats uri /stats"]
    return "\n".join(lines) + "\n"


def start_haproxy(top: Path, port: int, servers: list[tuple[str, int]]) -> subprocess.Popen[bytes]:
    cfg = top / "haproxy.cfg"
    cfg.write_text(haproxy_config(port, servers))
    check = subprocess.run(["/usr/sbin/haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    if check.returncode:
        raise RuntimeError(f"haproxy -c: {check.stdout}{check.stderr}")
    log = open(top / "haproxy.log", "wb")  # noqa: SIM115  (haproxy writes it for its whole life)
    return subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)


def wait_for(what: Any, timeout: float = 60.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
