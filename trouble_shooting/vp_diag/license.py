"""License of each install root: file, key, signature (runtime), dates, fingerprint, clock, scope.

Everything but the Ed25519 signature is checked with the standard library: the package's own
license parser, fingerprint and clock mark, loaded by path (shared.py), and licfile.py for what
needs ``cryptography`` in the package. So a broken runtime still gets a full picture; the
signature and the runtime's own verdict come from ``admin.diff_report`` / ``admin.status`` run
in a deploy's runtime venv. Every reason named here is one of ``licensing.license.REASONS``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import licfile, shared, venv_exec
from .core import FAIL, PASS, WARN, Context, Deploy, Result, quote

GROUP = "license"
ORDER = 20
SIGNATURE_REASONS = ("malformed", "unsupported-algorithm", "unknown-key", "bad-signature")

CODE = r"""
from visionpack.errors import LicenseError
from visionpack.licensing import admin
lic_dir = sys.argv[2]
out = {"signature": "ok", "detail": None, "status": {}}
try:
    out["diff"] = admin.diff_report(lic_dir + "/license.lic", lic_dir)
except LicenseError as exc:
    out["signature"], out["detail"] = exc.reason, exc.detail
for deploy, service in json.loads(sys.argv[3]):
    out["status"][deploy] = admin.status(lic_dir, deploy, service)
print(json.dumps(out, default=str))
"""


def fix_table(ctx: Context, root: Path) -> dict[str, list[str]]:
    """The repair of each licensing reason (the keys are exactly ``licensing.license.REASONS``)."""
    lic = str(root / "licenses" / "license.lic")
    fp = ctx.install_cmd(root, "fingerprint", "--diff", lic)
    lu = ctx.install_cmd(root, "lu", "NEW_LICENSE")
    return {
        "missing": [ctx.install_cmd(root, "lu", "LICENSE_FILE_FROM_THE_VENDOR")],
        "malformed": ["# the file was damaged in transfer: get it again from the vendor, then", lu],
        "unsupported-algorithm": ["# ask the vendor for a file made by the current tool, then", lu],
        "unknown-key": [
            f"cp {quote(ctx.package / 'licenses') if ctx.package else 'PACKAGE/licenses'}/*.pub "
            f"{quote(root / 'licenses')}/",
            fp,
        ],
        "bad-signature": ["# the file was altered after signing: get an unmodified copy from the vendor, then", lu],
        "wrong-machine": [
            fp,
            ctx.install_cmd(root, "fingerprint", "--out", "request.json") + "  # send request.json to the vendor",
            lu,
        ],
        "wrong-gpu": ["nvidia-smi -L  # put the licensed GPU back, or ask for a license for this one", lu],
        "gpu-not-licensed": [
            "nvidia-smi -L  # the license binds one of these GPUs; the deploy's error.log names it (gpu:M)",
            "# set the deploy's device to gpu:M (docs/gpu.md), or ask the vendor for a license for this GPU, then",
            lu,
        ],
        "expired": ["# ask the vendor for a renewal, then", lu],
        "not-yet-valid": ["date -u  # check the clock; the license starts later", "timedatectl set-ntp true"],
        "issued-in-future": ["date -u  # the clock is behind the license's issue time", "timedatectl set-ntp true"],
        "clock-rollback": ["date -u", "timedatectl set-ntp true  # set the clock right (NTP)"],
        "deploy-not-licensed": ["# ask the vendor for a license naming this deploy, then", lu],
        "service-not-licensed": ["# ask the vendor for a license naming this service, then", lu],
        "instance-limit": [ctx.install_cmd(root, "status") + "  # stop one, or get more instances", lu],
    }


def fixes(ctx: Context, root: Path, reason: str) -> list[str]:
    """The repair of ``reason``; for one this tool does not know (a newer runtime's), the fingerprint diff."""
    found = fix_table(ctx, root).get(reason)
    return (
        found
        if found is not None
        else [ctx.install_cmd(root, "fingerprint", "--diff", str(root / "licenses" / "license.lic"))]
    )


def renew_early(ctx: Context, root: Path) -> list[str]:
    """Not a reason (the license still works): it expires within EXPIRY_WARNING_DAYS."""
    return ["# ask the vendor for a renewal before it expires, then", ctx.install_cmd(root, "lu", "NEW_LICENSE")]


def reset_mark(ctx: Context, root: Path, marks: tuple[Path, ...]) -> list[str]:
    """clock-rollback because no copy of the mark verifies (edited or copied): once the clock is
    right, deleting the copies lets the next start rebuild the mark."""
    return ["timedatectl set-ntp true  # restore the clock first, then:", "rm " + " ".join(quote(m) for m in marks)]


def _runtime_for(ctx: Context, root: Path, deploys: list[Deploy]) -> tuple[Path, Path] | None:
    """(python, package dir) to verify with: a deploy's runtime and release, else any runtime + the package."""
    for d in deploys:
        if d.runtime and d.release and (d.runtime / "bin" / "python").exists():
            return d.runtime / "bin" / "python", d.release / "package"
    if ctx.package:
        for py in sorted((root / ".runtime").glob("*/bin/python")):
            return py, ctx.package / "package"
    return None


def dates(ctx: Context, root: Path, g: str, licmod: Any, lic: Any, now: float) -> Result:
    p = lic.payload
    issued, nb, exp = lic.issued_at, lic.not_before, lic.expires_at
    drift = licmod.MAX_CLOCK_DRIFT
    data = {"issued_at": p["issued_at"], "not_before": p["not_before"], "expires_at": p["expires_at"]}
    if issued > now + drift:
        return Result(
            g,
            "dates",
            FAIL,
            f"issued-in-future: issued {p['issued_at']} but the clock says {licmod.format_time(now)}",
            fixes(ctx, root, "issued-in-future"),
            data=data,
        )
    if now < nb - drift:
        return Result(
            g,
            "dates",
            FAIL,
            f"not-yet-valid: valid from {p['not_before']} (in {(nb - now) / 3600:.1f} h)",
            fixes(ctx, root, "not-yet-valid"),
            data=data,
        )
    left = exp - now
    data["days_left"] = max(0, int(left // 86400))
    if left <= 0:
        return Result(
            g,
            "dates",
            FAIL,
            f"expired: expired at {p['expires_at']} ({-left / 86400:.1f} days ago)",
            fixes(ctx, root, "expired"),
            data=data,
        )
    if left <= licmod.EXPIRY_WARNING_DAYS * 86400:
        return Result(
            g,
            "dates",
            WARN,
            f"expires {p['expires_at']}: {left / 86400:.1f} days left",
            renew_early(ctx, root),
            data=data,
        )
    return Result(g, "dates", PASS, f"valid until {p['expires_at']}: {data['days_left']} days left", data=data)


def fingerprint(ctx: Context, root: Path, g: str, p: dict[str, Any], fpmod: Any) -> Result:
    if fpmod is None:
        return Result(
            g,
            "fingerprint",
            WARN,
            "fingerprint not checked: licensing/fingerprint.py not found in any release or the package",
            [ctx.install_cmd(root, "fingerprint", "--diff", str(root / "licenses" / "license.lic"))],
        )
    fp = fpmod.collect()
    m = licfile.match(p, dict(fp.components))
    lines = [f"{r['component']}: {r['status']}" + (" (required)" if r["required"] else "") for r in m["rows"]]
    binding = p.get("binding") or {}
    gpu_bad = binding.get("type") == "gpu" and binding.get("uuid_hash") not in fp.gpus
    n = len(m["rows"])
    if gpu_bad:
        return Result(
            g,
            "fingerprint",
            FAIL,
            "wrong-gpu: the licensed GPU is not in this machine",
            fixes(ctx, root, "wrong-gpu"),
            lines,
            data=m,
        )
    if not m["ok"]:
        req = f"; required {', '.join(m['missing_required'])} changed" if m["missing_required"] else ""
        return Result(
            g,
            "fingerprint",
            FAIL,
            f"wrong-machine: {len(m['matched'])} of {n} components match, need "
            f"{m['min_match']}{req}; changed: {', '.join(m['changed'])}",
            fixes(ctx, root, "wrong-machine"),
            lines,
            data=m,
        )
    if m["changed"]:
        return Result(
            g,
            "fingerprint",
            WARN,
            f"still valid ({len(m['matched'])} of {n} match, need {m['min_match']}) "
            f"but changed: {', '.join(m['changed'])}",
            fixes(ctx, root, "wrong-machine"),
            lines,
            data=m,
        )
    return Result(g, "fingerprint", PASS, f"all {n} bound components match ({', '.join(m['matched'])})", data=m)


def clock(ctx: Context, root: Path, g: str, licmod: Any, clkmod: Any, now: float) -> Result:
    if clkmod is None:
        return Result(g, "clock", WARN, "clock mark not checked (no clock module to derive its key)", ["date -u"])
    mark = clkmod.ClockMark(clkmod.DEFAULT_STATE_DIR)
    state_dir, where = mark.state_dir, mark.paths[0]
    try:
        high, labels = mark.read()  # reads only: the gate's check() is what advances the mark
    except clkmod.LicenseError:
        return Result(
            g,
            "clock",
            FAIL,
            f"clock-rollback: the clock mark in {state_dir} does not verify on this machine (edited or copied)",
            reset_mark(ctx, root, mark.paths),
        )
    if high is None:
        return Result(g, "clock", PASS, f"no clock mark yet ({where}); the first service start writes it")
    behind = high - now
    data = {"mark": licmod.format_time(high), "copies": labels}
    if behind > licmod.MAX_CLOCK_DRIFT:
        return Result(
            g,
            "clock",
            FAIL,
            f"clock-rollback: the clock {licmod.format_time(now)} is {behind / 60:.0f} min "
            f"behind the latest time seen {licmod.format_time(high)}",
            fixes(ctx, root, "clock-rollback"),
            data=data,
        )
    return Result(
        g,
        "clock",
        PASS,
        f"not behind the latest time seen ({licmod.format_time(high)}; copies {', '.join(labels)})",
        data=data,
    )


def scope(ctx: Context, root: Path, g: str, p: dict[str, Any], d: Deploy) -> Result:
    deps, svcs = p.get("deploys"), p.get("services")
    if deps != "*" and d.name not in (deps or []):
        return Result(
            g,
            f"scope {d.name}",
            FAIL,
            f"deploy-not-licensed: the license names deploys {deps}",
            fixes(ctx, root, "deploy-not-licensed"),
            deploy=d.name,
        )
    if svcs != "*" and d.service not in (svcs or []):
        return Result(
            g,
            f"scope {d.name}",
            FAIL,
            f"service-not-licensed: {d.service!r} is not in {svcs}",
            fixes(ctx, root, "service-not-licensed"),
            deploy=d.name,
        )
    return Result(g, f"scope {d.name}", PASS, f"deploy {d.name} / service {d.service} licensed", deploy=d.name)


def root_checks(ctx: Context, root: Path) -> list[Result]:
    g = f"license ({root / 'licenses'})"
    deploys = [d for d in ctx.deploys if d.root == root]
    path = root / "licenses" / "license.lic"
    licmod = shared.load("licensing.license", shared.own_package(ctx.package, ctx.diag_dir))
    if licmod is None:
        return [
            Result(
                g,
                "license-file",
                WARN,
                f"{path} not checked: no visionpack package found next to this tool "
                "(its license parser reads the file)",
                [ctx.install_cmd(root, "fingerprint", "--diff", str(path))],
            )
        ]
    try:
        data = path.read_bytes()[: licmod.MAX_BYTES + 1]
    except OSError as exc:
        return [Result(g, "license-file", FAIL, f"missing: {path} ({exc.strerror})", fixes(ctx, root, "missing"))]
    try:
        lic = licmod.parse(data)  # the package's parser: the same verdict and reason as the services'
    except licmod.LicenseError as exc:
        return [Result(g, "license-file", FAIL, f"{exc.reason}: {path}: {exc.detail}", fixes(ctx, root, exc.reason))]
    p = lic.payload
    out = [
        Result(
            g,
            "license-file",
            PASS,
            f"{p.get('id')} for {p.get('customer')!r}, issued {p.get('issued_at')}, {p.get('instances')} instance(s)",
            data={"id": p.get("id"), "customer": p.get("customer")},
        )
    ]
    kids = licfile.key_ids(licmod, root / "licenses")
    if lic.kid in kids:
        out.append(Result(g, "key", PASS, f"signed with key {lic.kid} ({kids[lic.kid]})"))
    else:
        out.append(
            Result(
                g,
                "key",
                FAIL,
                f"unknown-key: signed with key {lic.kid}, not among the public keys in "
                f"{root / 'licenses'} ({', '.join(kids) or 'none'})",
                fixes(ctx, root, "unknown-key"),
            )
        )
    now = time.time()
    machine = licfile.candidates(ctx.package, ctx.diag_dir, [d.release for d in deploys if d.release])
    fpmod = shared.load("licensing.fingerprint", machine)
    clkmod = shared.load("licensing.clock", machine)
    out.append(clock(ctx, root, g, licmod, clkmod, now))  # before the runtime runs: its gate advances the mark
    out.append(dates(ctx, root, g, licmod, lic, now))
    out.append(fingerprint(ctx, root, g, dict(p), fpmod))
    out += [scope(ctx, root, g, p, d) for d in deploys if d.state]
    out += signature(ctx, root, g, deploys, {r.detail.split(":", 1)[0] for r in out if r.status == FAIL})
    return out


def signature(ctx: Context, root: Path, g: str, deploys: list[Deploy], explained: set) -> list[Result]:
    rt = _runtime_for(ctx, root, deploys)
    if rt is None:
        return [
            Result(
                g,
                "signature",
                WARN,
                "license signature not checked (runtime unavailable)",
                [ctx.install_cmd(root, "fingerprint", "--diff", str(root / "licenses" / "license.lic"))],
            )
        ]
    specs = [[d.name, d.service] for d in deploys if d.state and d.service]
    res, err = venv_exec.run(rt[0], rt[1], CODE, [str(root / "licenses"), json.dumps(specs)], timeout=60)
    if not isinstance(res, dict):
        return [
            Result(
                g,
                "signature",
                WARN,
                f"license signature not checked (runtime unavailable: {err})",
                [f"{quote(rt[0])} -c 'import cryptography'"],
            )
        ]
    out = []
    sig = res.get("signature")
    if sig == "ok":
        out.append(Result(g, "signature", PASS, f"Ed25519 signature valid (checked with {rt[0]})"))
    elif sig in SIGNATURE_REASONS:
        if sig not in explained:
            out.append(Result(g, "signature", FAIL, f"{sig}: {res.get('detail')}", fixes(ctx, root, sig)))
    else:
        out.append(
            Result(
                g, "signature", WARN, f"signature not confirmed: {sig}: {res.get('detail')}", fixes(ctx, root, str(sig))
            )
        )
    for d in deploys:
        st = (res.get("status") or {}).get(d.name)
        if not isinstance(st, dict):
            continue
        if st.get("licensed"):
            running = st.get("instances_running")
            n = len(running) if isinstance(running, list) else running
            out.append(
                Result(
                    g,
                    f"verdict {d.name}",
                    PASS,
                    f"the runtime accepts it for {d.name}: {st.get('days_left')} days left, instances running: {n}",
                    deploy=d.name,
                )
            )
        elif st.get("reason") not in explained:
            out.append(
                Result(
                    g,
                    f"verdict {d.name}",
                    FAIL,
                    f"{st.get('reason')}: {st.get('detail')}",
                    fixes(ctx, root, str(st.get("reason"))),
                    deploy=d.name,
                )
            )
    return out


def checks(ctx: Context) -> Iterable[Result]:
    for root in ctx.roots:
        for r in root_checks(ctx, root):
            r.root = str(root)
            yield r
