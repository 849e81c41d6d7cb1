"""A saved classification result as the markdown table of benchmarks/README.md ("Latest results").

.venv/bin/python benchmarks/bench_classification.py --table benchmarks/results/<run>.json
"""

from __future__ import annotations

import statistics
from typing import Any


def markdown_table(r: dict[str, Any]) -> str:
    """The headline figures of one result, as README rows: median [min-max] over rounds."""

    def f(s: dict[str, Any] | None, digits: int = 1) -> str:
        if not s or s.get("median") is None:
            return "n/a"
        return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"

    rows = [
        f"Run {r['started_utc']} ({r.get('label') or 'tree as committed'}), {r['machine']['cores']} cores, "
        f"{r['method']['rounds']} rounds; median [min-max] over rounds",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for key, v in r.get("predictor", {}).items():
        rows.append(f"| predictor p50 / p95 ms, Paddle {key.replace('_', ' ')} | {f(v['p50_ms'])} / {f(v['p95_ms'])} |")
        if v.get("batch4_per_image_p50_ms"):
            rows.append(
                f"| predictor p50 ms per image in a batch of 4, Paddle {key.replace('_', ' ')} | "
                f"{f(v['batch4_per_image_p50_ms'], 2)} |"
            )
    dp = r.get("decode_preprocess", {})
    rows.append(
        f"| JPEG decode + preprocess p50 / p95 ms | {f(dp.get('decode_preprocess_p50_ms'), 2)} / "
        f"{f(dp.get('decode_preprocess_p95_ms'), 2)} |"
    )
    rows.append(
        f"| JSON + base64 p50 ms / whole service in-process p50 ms | {f(dp.get('json_base64_p50_ms'), 2)} / "
        f"{f(dp.get('service_inprocess_p50_ms'))} |"
    )
    for label, v in r.get("single_client", {}).items():
        rows.append(f"| 1 client p50 / p95 ms, {label} | {f(v['p50_ms'])} / {f(v['p95_ms'])} |")
    for name, v in r.get("load", {}).items():
        rows.append(f"| {r['method']['clients']} clients, {name}: req/s | {f(v['rps'])} |")
        rows.append(
            f"| {r['method']['clients']} clients, {name}: p50 / p95 ms | {f(v['latency_p50_ms'], 0)} / "
            f"{f(v['latency_p95_ms'], 0)} |"
        )
        rows.append(
            f"| {r['method']['clients']} clients, {name}: server CPU ms per request | "
            f"{f(v['server_cpu_ms_per_request'])} |"
        )
    others = [x for v in r.get("load", {}).values() for x in v["other_processes_cores"]["rounds"]]
    if others:
        rows.append(
            f"| other processes' CPU during the loads, cores of {r['machine']['cores']} | "
            f"{statistics.median(others):.2f} [{min(others):.2f}-{max(others):.2f}] |"
        )
    for name, m in r.get("memory_after_load", {}).items():
        ws = ", ".join(f"{w['rss_mib']:.0f}" for w in m["workers"])
        rows.append(f"| RSS per worker MiB, {name} | {ws} |")
    rows += ["", "| target | value | required | pass | per round |", "|---|---|---|---|---|"]
    for name, t in r.get("targets", {}).items():
        rows.append(f"| {name} | {t['value']} | {t['target']} | {'yes' if t['pass'] else 'no'} | {t['rounds']} |")
    for name, v in r.get("supplementary", {}).items():
        rows.append(f"| (not a target) {name} | {v['median']} | | | {v['rounds']} |")
    return "\n".join(rows)
