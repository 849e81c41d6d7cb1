"""trouble_shooting.sh [--root DIR] [DEPLOY] [--json] [--bundle [--bundle-out FILE]] [--since HOURS]

Exit status: 0 when nothing FAILed, 1 when something did, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import bundle, discover, registry, report
from .core import FAIL, Context, Result

DIAG_DIR = Path(__file__).resolve().parents[1]


def _rank(group: str) -> int:
    # Output order: what everything depends on first (host, then license), then each deploy.
    for i, prefix in enumerate(("install roots", "host", "license")):
        if group.startswith(prefix):
            return i
    return 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="trouble_shooting.sh",
        description="Diagnose a visionpack install: one line "
        "per check (PASS/WARN/FAIL/SKIP), with the command that fixes each problem.",
    )
    ap.add_argument("deploy", nargs="?", metavar="DEPLOY", help="check only this deploy")
    ap.add_argument("--root", metavar="DIR", help="install root (default: found by itself)")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--bundle", action="store_true", help="also write a support tarball (logs, config, report)")
    ap.add_argument(
        "--bundle-out", metavar="FILE", help="where --bundle writes (default: ./visionpack-support-*.tar.gz)"
    )
    ap.add_argument(
        "--since", type=float, default=24.0, metavar="HOURS", help="log lines this recent count (default 24)"
    )
    return ap.parse_args(argv)


def build_context(args: argparse.Namespace) -> tuple:
    package = discover.find_package(DIAG_DIR)
    pre: list[Result] = []
    roots = discover.find_roots(args.root, package=package)
    if args.root and not discover.is_root(roots[0]):
        pre.append(
            Result(
                "install roots",
                "root",
                FAIL,
                f"{roots[0]} is not a visionpack install root (no licenses/, .runtime/ or deploy with state.json)",
                ["bash trouble_shooting/trouble_shooting.sh --root DIR  # the --root you gave install.py"],
            )
        )
        roots = []
    elif not roots:
        looked = ", ".join(
            filter(
                None,
                [
                    os.environ.get("VISIONPACK_ROOT"),
                    str(discover.DEFAULT_ROOT),
                    str(package / "work") if package else None,
                ],
            )
        )
        pre.append(
            Result(
                "install roots",
                "root",
                FAIL,
                f"no install root found (looked in {looked} and running services)",
                ["bash trouble_shooting/trouble_shooting.sh --root DIR"],
            )
        )
    deploys = discover.load_deploys(roots, args.deploy)
    if args.deploy:
        if not deploys and roots:
            pre.append(
                Result(
                    "install roots",
                    "deploy",
                    FAIL,
                    f"deploy {args.deploy!r} is not installed in {', '.join(map(str, roots))}",
                    [f"ls {' '.join(map(str, roots))}"],
                )
            )
        roots = [r for r in roots if any(d.root == r for d in deploys)] or roots
    else:
        for r in roots:
            pre.append(
                Result(
                    "install roots",
                    "root",
                    "PASS",
                    f"{r}: deploys {', '.join(d.name for d in deploys if d.root == r) or 'none'}",
                    root=str(r),
                )
            )
    ctx = Context(roots=roots, deploys=deploys, package=package, diag_dir=DIAG_DIR, selected=args.deploy)
    ctx.facts["since_hours"] = args.since
    return ctx, pre


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    ctx, pre = build_context(args)
    results = pre + (registry.run_all(ctx) if ctx.roots else [])
    results.sort(key=lambda r: _rank(r.group))  # stable: check order within a group is kept
    roots = [str(r) for r in ctx.roots]
    text, doc = report.text(results, roots), report.to_json(results, roots)
    sys.stdout.write(doc if args.json else text)
    if args.bundle:
        out = bundle.write(ctx, text, doc, Path(args.bundle_out).resolve() if args.bundle_out else None)
        print(f"support bundle written: {out}", file=sys.stderr if args.json else sys.stdout)
    return 1 if any(r.status == FAIL for r in results) else 0
