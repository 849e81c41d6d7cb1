"""Start ``paddlex --serve`` with one compatibility fix; run with the .paddlex-venv python.

    .paddlex-venv/bin/python benchmarks/paddlex_serve.py --pipeline P.yaml --host 127.0.0.1 --port N

Why a fix is needed: in PaddleX 3.7.2 the image-classification serving app answers every
request with HTTP 500, for any classification model. ``Topk.__call__``
(models/image_classification/processors.py) returns the batch's class ids as one ndarray of
shape (batch, k); ``BasePredictor.apply`` (models/predictors/base_predictor.py) splits a batch
into per-image results only for ``list`` values, so each image keeps the whole (1, k) array;
the serving app then zips over it and pydantic rejects ``categories.0.id`` (an array, not an
int). ``paddlex.create_model(...).predict`` shows the same thing as ``class_ids`` of shape
(1, k). Wrapping the ids in a list (one row per image) is all it takes; it costs nothing
measurable, so the benchmark still measures PaddleX's own serving path.
"""

from __future__ import annotations

import os
import sys


def patch_topk() -> None:
    from paddlex.inference.models.image_classification import processors

    original = processors.Topk.__call__
    if getattr(original, "_visionpack_patched", False):
        return

    def __call__(self, preds, topk=5):  # noqa: N807 (same signature as PaddleX)
        indexes, scores, label_names = original(self, preds, topk)
        return list(indexes), scores, label_names

    __call__._visionpack_patched = True  # type: ignore[attr-defined]
    processors.Topk.__call__ = __call__


def main() -> None:
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    patch_topk()
    from paddlex.paddlex_cli import main as paddlex_main

    sys.argv = ["paddlex", "--serve", *sys.argv[1:]]
    paddlex_main()


if __name__ == "__main__":
    main()
