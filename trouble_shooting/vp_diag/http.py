"""HTTP: /health, /ready, one real inference with a bundled image, and reachability on the
host's own non-loopback addresses. Traffic goes only to this machine: loopback and the
addresses its own interfaces carry (never another host).

API keys (README "API keys"): the tool only reads, so it never creates one. With the default
policies its loopback requests need none. Where the operator set ``ops`` or ``infer`` to ``key``,
it sends ``$VISIONPACK_API_KEY`` if set; without it, /ready tells only ready / not ready (the
check says so and how to see the reason) and the inference check is a WARN naming the command.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any, Callable

from . import procfs
from .core import FAIL, PASS, SKIP, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "http"
ORDER = 60
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # an http_proxy must not see local probes
API_KEY_ENV = "VISIONPACK_API_KEY"
REFUSED = (110, 6)  # Baidu's codes for "no / bad key" and "key without the scope" (errors.py)


def auth_headers(env: dict[str, str] | None = None) -> dict[str, str]:
    key = (os.environ if env is None else env).get(API_KEY_ENV, "").strip()
    return {"X-API-Key": key} if key else {}


def url(host: str, port: int, path: str) -> str:
    h = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{h}]:{port}{path}" if ":" in h else f"http://{h}:{port}{path}"


def fetch(
    u: str, body: dict | None = None, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int | None, Any, str]:
    """(status, parsed JSON or None, error text); status None when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    hdrs = dict(headers or {})
    if data:
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(u, data=data, headers=hdrs)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        return None, None, str(getattr(exc, "reason", exc))
    try:
        return status, json.loads(raw), ""
    except ValueError:
        return status, None, raw[:200].decode("utf-8", "replace")


def _cls_ok(doc: dict) -> tuple[str, str]:
    res = doc.get("results")
    if not isinstance(res, list) or not res:
        return WARN, "answered without results"
    top = res[0]
    return PASS, f"top result {top.get('name')!r} score {top.get('score')}"


def _kpt_ok(doc: dict) -> tuple[str, str]:
    if not isinstance(doc.get("person_num"), int):
        return FAIL, "answer has no person_num"
    return PASS, f"{doc['person_num']} person(s) found"


def _face_ok(doc: dict) -> tuple[str, str]:
    res = doc.get("result") or {}
    n = res.get("face_num")
    if not isinstance(n, int):
        return FAIL, "answer has no result.face_num"
    if n < 1:
        return WARN, "no face found in a photo of one face (detector thresholds?)"
    return PASS, f"{n} face(s) found"


# service -> (sample candidates, EasyDL route, extra fields, judge of a success answer)
INFERENCE: dict[str, tuple[tuple[str, ...], str, dict, Callable[[dict], tuple[str, str]]]] = {
    "classification": (("cat.jpg",), "/{deploy}/ImageClassification", {"top_num": 3}, _cls_ok),
    "keypoint": (("person.jpg", "keypoint.jpg", "astronaut.jpg"), "/{deploy}/HumanKeypointDetection", {}, _kpt_ok),
    "face": (("faces/obama_2.jpg", "faces/obama_1.jpg"), "/{deploy}/FaceRecognition", {}, _face_ok),
}


def health_check(ctx: Context, d: Deploy) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    u = url(d.host, d.port, "/health")
    status, doc, err = fetch(u)
    if status == 200:
        return Result(g, "health", PASS, f"GET {u} -> 200", **kw)
    return Result(
        g,
        "health",
        FAIL,
        f"GET {u} -> {status or err}",
        [f"tail -n 50 {quote(d.dir / 'logs' / 'error.log')}", ctx.install_cmd(d.root, "restart", d.name)],
        **kw,
    )


def ready_check(ctx: Context, d: Deploy) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    u = url(d.host, d.port, "/ready")
    status, doc, err = fetch(u, timeout=10, headers=auth_headers())
    summary = isinstance(doc, dict) and set(doc) == {"ready"}  # no ops rights: the verdict only
    if status == 200:
        return Result(
            g,
            "ready",
            PASS,
            f"GET {u} -> 200" + (" (readiness only: the ops policy hides the detail)" if summary else ""),
            **kw,
        )
    if summary:
        return Result(
            g,
            "ready",
            FAIL,
            f"GET {u} -> {status}: not ready; the reason is shown only with ops rights",
            [
                f"{API_KEY_ENV}=<a key with the ops scope> bash trouble_shooting/trouble_shooting.sh",
                ctx.install_cmd(d.root, "apikey", "create", d.name, "--scope", "ops"),
                f"tail -n 50 {quote(d.dir / 'logs' / 'error.log')}",
            ],
            data={"body": doc},
            **kw,
        )
    text = json.dumps(doc, ensure_ascii=False)[:300] if doc is not None else err
    if isinstance(doc, dict) and doc.get("reason"):
        # /ready names why (routes.ready): "license: expired" with the gate's detail, or a load error.
        lic = doc.get("license") if isinstance(doc.get("license"), dict) else {}
        text = f"{doc['reason']}" + (f" ({lic.get('detail')})" if lic.get("detail") else "")
    fix = [f"tail -n 50 {quote(d.dir / 'logs' / 'error.log')}"]
    if "licen" in text.lower():
        fix = [
            ctx.install_cmd(d.root, "fingerprint", "--diff", str(d.root / "licenses" / "license.lic")),
            ctx.install_cmd(d.root, "lu", "NEW_LICENSE"),
        ]
    return Result(g, "ready", FAIL, f"GET {u} -> {status}: {text}", fix, data={"body": doc}, **kw)


def inference_check(ctx: Context, d: Deploy) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    spec = INFERENCE.get(d.service)
    if spec is None:
        return Result(g, "inference", SKIP, f"no sample request known for service {d.service!r}", **kw)
    names, route, extra, judge = spec
    sample = next((p for p in (ctx.sample(n) for n in names) if p is not None), None)
    if sample is None:
        where = " or ".join(str(s) for s in ctx.samples())
        return Result(
            g,
            "inference",
            WARN,
            f"no sample image ({', '.join(names)}) in {where}",
            ["bash trouble_shooting/build_tar.sh  # the tar carries the sample images"],
            **kw,
        )
    u = url(d.host, d.port, route.format(deploy=d.name))
    body = {"image": base64.b64encode(sample.read_bytes()).decode(), **extra}
    t0 = time.monotonic()
    status, doc, err = fetch(u, body, timeout=120, headers=auth_headers())
    ms = (time.monotonic() - t0) * 1000
    logs = f"tail -n 50 {quote(d.dir / 'logs' / 'error.log')}"
    if status is None or not isinstance(doc, dict):
        return Result(g, "inference", FAIL, f"POST {u} ({sample.name}) -> {status or err}", [logs], **kw)
    if doc.get("error_code") in REFUSED:
        # The infer policy wants a key (README "API keys"): not a fault of the service.
        given = "the key in $" + API_KEY_ENV if auth_headers() else "no API key"
        return Result(
            g,
            "inference",
            WARN,
            f"POST {u} ({sample.name}) refused with {given}: error_code "
            f"{doc['error_code']} {doc.get('error_msg')!r}; cannot check inference",
            [
                f"{API_KEY_ENV}=<a key with the infer scope> bash trouble_shooting/trouble_shooting.sh",
                ctx.install_cmd(d.root, "apikey", "create", d.name, "--scope", "infer"),
                ctx.install_cmd(d.root, "apikey", "list", d.name),
            ],
            data={"answer": doc},
            **kw,
        )
    if "error_code" in doc:
        fix = [logs]
        if doc.get("error_code") == 337000:
            fix = [ctx.install_cmd(d.root, "fingerprint", "--diff", str(d.root / "licenses" / "license.lic"))]
        return Result(
            g,
            "inference",
            FAIL,
            f"POST {u} ({sample.name}) -> error_code {doc.get('error_code')} {doc.get('error_msg')!r}",
            fix,
            data={"answer": doc},
            **kw,
        )
    verdict, what = judge(doc)
    return Result(
        g,
        "inference",
        verdict,
        f"POST {route.format(deploy=d.name)} with {sample.name}: {what} in {ms:.0f} ms",
        [] if verdict == PASS else [logs],
        **kw,
    )


def targets(host: str, own: list[str]) -> list[str]:
    """Own addresses a client could use for a server bound to ``host`` (empty: loopback only)."""
    if host == "0.0.0.0":
        return [a for a in own if ":" not in a]
    if host == "::":
        return list(own)
    return [host] if host in own else []


def reach_check(ctx: Context, d: Deploy, own: list[str] | None = None) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    own = procfs.own_addresses() if own is None else own
    addrs = targets(d.host, own)
    if not addrs:
        why = (
            "listens on loopback only"
            if d.host in ("127.0.0.1", "::1", "localhost")
            else f"no non-loopback address of this host matches {d.host}"
        )
        return Result(g, "reachable", PASS, f"{why}: nothing to probe", **kw)
    bad, good = [], []
    for a in addrs:
        status, _, err = fetch(url(a, d.port, "/health"), timeout=3)
        (good if status == 200 else bad).append(f"{a} ({status or err})" if status != 200 else a)
    if bad:
        return Result(
            g,
            "reachable",
            FAIL,
            f"GET /health fails on this host's own address(es) {', '.join(bad)}",
            [
                f"ss -ltn 'sport = :{d.port}'",
                "iptables -S INPUT  # a firewall rule dropping the port?",
                ctx.install_cmd(d.root, "restart", d.name),
            ],
            data={"ok": good, "failed": bad},
            **kw,
        )
    return Result(g, "reachable", PASS, f"GET /health answers on {', '.join(good)}", **kw)


def checks(ctx: Context) -> Iterable[Result]:
    own = None
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken") or not ctx.deploy_fact(d, "running"):
            continue
        h = health_check(ctx, d)
        yield h
        if h.status != PASS:
            for name in ("ready", "inference", "reachable"):
                yield Result(
                    deploy_group(d),
                    name,
                    SKIP,
                    "can't check because of previous errors (health)",
                    deploy=d.name,
                    root=str(d.root),
                )
            continue
        r = ready_check(ctx, d)
        yield r
        if r.status == PASS:
            yield inference_check(ctx, d)
        else:
            yield Result(
                deploy_group(d),
                "inference",
                SKIP,
                "can't check because of previous errors (ready)",
                deploy=d.name,
                root=str(d.root),
            )
        own = procfs.own_addresses() if own is None else own
        yield reach_check(ctx, d, own)
