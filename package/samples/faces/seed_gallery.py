"""Seed a running face service's gallery with the sample photos, then recognise the query photo.

    python3 package/samples/faces/seed_gallery.py [--host 127.0.0.1] [--port 8703] [--deploy demo-face]
                                                  [--group default] [--query obama_2.jpg]

Standard library only (the quick start runs it with the system python3). Idempotent: labels
that already have as many faces in the group as gallery.txt lists are not added again. Prints
the EasyDL ``FaceRecognition`` answer for the query photo; exits non-zero when a request fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            out = json.loads(r.read())
    except urllib.error.URLError as exc:
        raise SystemExit(f"{url}: {exc}") from None
    if out.get("error_code"):
        raise SystemExit(f"{url}: error {out['error_code']} {out.get('error_msg')}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8703)
    ap.add_argument("--deploy", default="demo-face")
    ap.add_argument("--group", default="default")
    ap.add_argument("--query", default="obama_2.jpg")
    args = ap.parse_args()
    base = f"http://{args.host}:{args.port}/{args.deploy}"
    wanted = [line.split(maxsplit=1) for line in (HERE / "gallery.txt").read_text().splitlines() if line.strip()]
    have: Counter[str] = Counter()
    start = 0
    while True:
        page = post(f"{base}/FaceGallery/list", {"group_id": args.group, "start": start, "length": 1000})["result"]
        have.update(f["user_id"] for f in page["face_list"])
        start += len(page["face_list"])
        if start >= page["face_num"] or not page["face_list"]:
            break
    need = Counter(label for _, label in wanted)
    for path, label in wanted:
        if have[label] >= need[label]:
            continue
        image = base64.b64encode((HERE / path).read_bytes()).decode()
        res = post(f"{base}/FaceGallery/add", {"image": image, "user_id": label, "group_id": args.group})["result"]
        have[label] += 1
        print(f"added {path} as {label}: face_id {res['face_id']}, face found: {res['face_found']}", file=sys.stderr)
    query = base64.b64encode((HERE / args.query).read_bytes()).decode()
    out = post(f"{base}/FaceRecognition", {"image": query, "group_id": args.group})
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
