"""Prove a release healthy before traffic goes to it: a real request on its private probe port.

Per service, what "healthy" means:

- classification: ``/ready`` is 200 and ``POST /<deploy>/ImageClassification`` with the
  release's own ``package/samples/cat.jpg`` answers results and no ``error_code``;
- face, keypoint: ``/ready`` is 200. Their ``/ready`` comes after the warm-up inference of
  every model, and for face after the gallery was re-embedded for this release's feature
  model (docs/face-service.md "Feature-model changes"), so it is the real inference.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from ..errors import StartFailed

SAMPLES = {"classification": "cat.jpg"}


def prove(
    service: str,
    deploy: str,
    release: Path,
    port: int,
    timeout: float = 60.0,
    headers: Mapping[str, str] | None = None,
) -> str:
    """A one-line description of the proof; StartFailed with the answer if it failed.

    ``headers``: access.probe's key when the deploy's infer policy would refuse this machine."""
    sample = SAMPLES.get(service)
    if sample is None:
        return "/ready answered 200 (warm-up inference done)"
    image = release / "package" / "samples" / sample
    try:
        data = image.read_bytes()
    except OSError:
        # A package without samples (a user's own build): /ready already ran the warm-up.
        return f"/ready answered 200 ({image} missing, no sample request)"
    body = json.dumps({"image": base64.b64encode(data).decode(), "top_num": 3}).encode()
    url = f"http://127.0.0.1:{port}/{deploy}/ImageClassification"
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:
        raise StartFailed(f"the sample request to the new release failed: {exc}") from None
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    results = doc.get("results") if isinstance(doc, dict) else None
    if status != 200 or not isinstance(results, list) or not results or "error_code" in doc:
        raise StartFailed(f"the new release answered the sample image {sample} with HTTP {status}: {raw[:300]!r}")
    top = results[0]
    return f"{sample} -> {top.get('name')!r} ({top.get('score')})"
