"""The 1000 ImageNet-1k class names, in class-index order, read out of the timm wheel (Apache-2.0).

timm ships ``timm/data/_info/imagenet_synsets.txt`` (the 1000 WordNet ids in the standard
class-index order: sorted synset ids, as every ImageNet-1k checkpoint uses) and
``imagenet_synset_to_lemma.txt`` (``<wnid>\\t<comma-separated lemmas>``). We read both straight
from the wheel with zipfile; timm itself is never installed or imported.

Name style: the whole WordNet lemma list, e.g. ``"tabby, tabby cat"`` or ``"espresso"``. That is
what PaddleClas' ``imagenet1k_label_list.txt`` (the label_list of PaddleX's own ImageNet exports)
carries, so our ``label_list`` reads the same as an official PaddleX classification export.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

__all__ = [
    "SYNSETS_MEMBER",
    "LEMMAS_MEMBER",
    "NUM_CLASSES",
    "LabelsError",
    "read_imagenet_labels",
    "read_imagenet_labels_from_texts",
]

SYNSETS_MEMBER = "timm/data/_info/imagenet_synsets.txt"
LEMMAS_MEMBER = "timm/data/_info/imagenet_synset_to_lemma.txt"
NUM_CLASSES = 1000


class LabelsError(ValueError):
    """The timm archive lacks the label files or they are malformed."""


def read_imagenet_labels_from_texts(synsets_text: str, lemmas_text: str) -> list[str]:
    synsets = [line.strip() for line in synsets_text.splitlines() if line.strip()]
    if len(synsets) != NUM_CLASSES or len(set(synsets)) != NUM_CLASSES:
        raise LabelsError(f"expected {NUM_CLASSES} distinct synsets, got {len(synsets)} ({len(set(synsets))} distinct)")
    if synsets != sorted(synsets):
        # the ImageNet-1k class index is the sorted order of the wnids; anything else is a different list
        raise LabelsError("synset list is not in the standard (sorted wnid) class-index order")
    lemmas: dict[str, str] = {}
    for line in lemmas_text.splitlines():
        wnid, sep, names = line.partition("\t")
        if sep:
            lemmas[wnid.strip()] = names.strip()
    missing = [s for s in synsets if not lemmas.get(s)]
    if missing:
        raise LabelsError(f"{len(missing)} synsets have no lemma, e.g. {missing[:3]}")
    return [lemmas[s] for s in synsets]


def read_imagenet_labels(timm_wheel: str | os.PathLike[str]) -> list[str]:
    """Class names 0..999 from a timm wheel (``timm-*.whl``)."""
    path = Path(timm_wheel)
    try:
        with zipfile.ZipFile(path) as zf:
            synsets = zf.read(SYNSETS_MEMBER).decode("utf-8")
            lemmas = zf.read(LEMMAS_MEMBER).decode("utf-8")
    except KeyError as exc:
        raise LabelsError(f"{path.name} does not contain {exc.args[0]}") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise LabelsError(f"cannot read {path}: {exc}") from exc
    return read_imagenet_labels_from_texts(synsets, lemmas)
