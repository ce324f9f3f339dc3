"""COCO annotations of 2D label maps: polygons along pixel edges, RLE for regions with holes.

Per connected region and class: a polygon in COCO's pixel-edge coordinates or, for a region
with holes, an uncompressed RLE, with its bounding box and area in pixels.
:func:`coco_document` gathers the annotations of a job into one ``coco.json``, one image per
item.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> m = np.zeros((20, 30), np.uint8); m[5:10, 5:15] = 1
    >>> anns = coco_annotations(MedicalImage(m, is_label=True), {1: "lung"})
    >>> anns[0]["category"], anns[0]["bbox"], anns[0]["area"]
    ('lung', [5.0, 5.0, 10.0, 5.0], 50.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlabel.image import MedicalImage

__all__ = ["coco_annotations", "coco_document", "rle_decode", "rle_encode"]


def coco_annotations(mask: MedicalImage, classes: dict[int, str]) -> list[dict[str, Any]]:
    """COCO-style annotations of a 2D label map: one per connected region and class.

    Coordinates follow COCO's convention: pixel ``(row, col)`` covers the square
    ``[col, col + 1] x [row, row + 1]``, so polygons lie in ``[0, width] x [0, height]`` and
    run along the region's pixel edges (a pixel is inside when its centre is). A region with
    holes gets an uncompressed RLE instead (``{"counts": [...], "size": [h, w]}``, column-major,
    starting with the count of zeros), because filled polygons would cover its holes.
    ``bbox`` (x, y, w, h) is the region's bounds and ``area`` its pixel count.
    """
    from scipy import ndimage

    labels = np.asarray(mask.array)
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 2:
        return []
    out: list[dict[str, Any]] = []
    for value, name in sorted(classes.items()):
        regions, _ = ndimage.label(labels == value)
        for k, box in enumerate(ndimage.find_objects(regions), start=1):
            if box is None:
                continue
            (y0, y1), (x0, x1) = ((s.start, s.stop) for s in box)
            crop = regions[y0:y1, x0:x1] == k
            segmentation: list[list[float]] | dict[str, Any] | None = None
            if not _has_holes(crop):
                polygons = _edge_polygons(crop, x0, y0)
                if np.array_equal(_fill_polygons(polygons, crop.shape, x0, y0), crop):
                    segmentation = polygons
            if segmentation is None:  # holes (or an outline polygons cannot render exactly)
                segmentation = rle_encode(regions == k)
            out.append(
                {
                    "category": name,
                    "segmentation": segmentation,
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": float(crop.sum()),
                    "iscrowd": 0,
                }
            )
    return out


def rle_encode(region: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE of a 2D boolean mask: run lengths in column-major (Fortran)
    order, starting with a run of zeros (possibly empty).

    Example:
        >>> rle_encode(np.array([[0, 1], [1, 1]], bool))
        {'counts': [1, 3], 'size': [2, 2]}
    """
    flat = np.asarray(region, bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {
        "counts": [int(c) for c in counts],
        "size": [int(region.shape[0]), int(region.shape[1])],
    }


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """The boolean mask of an uncompressed COCO RLE (inverse of :func:`rle_encode`)."""
    h, w = (int(v) for v in rle["size"])
    values = np.arange(len(rle["counts"])) % 2 == 1
    flat = np.repeat(values, np.asarray(rle["counts"], dtype=np.int64))
    return flat.reshape((h, w), order="F")


def _has_holes(region: np.ndarray) -> bool:
    """Whether background pixels are enclosed by ``region`` (not reachable from outside by
    edge or corner steps)."""
    from scipy import ndimage

    outside, _ = ndimage.label(~np.pad(region, 1), structure=np.ones((3, 3), bool))
    return bool((outside[1:-1, 1:-1][~region] != outside[0, 0]).any())


def _edge_polygons(region: np.ndarray, x0: int, y0: int) -> list[list[float]]:
    """Outlines of a boolean region along its pixel edges, offset by ``(x0, y0)``, as flat
    ``[x1, y1, x2, y2, ...]`` lists.

    Contours traced on the region upsampled twofold pass through pixel edges and cut corners
    by a quarter pixel; rounding snaps them onto the exact edge outline.
    """
    from skimage import measure

    fine = np.pad(np.repeat(np.repeat(region, 2, axis=0), 2, axis=1), 1).astype(np.uint8)
    polygons = []
    for contour in measure.find_contours(fine, 0.5):
        # fine index u (pad removed: u - 1) -> edge coordinate (u - 1 + 0.5) / 2
        points = np.round((contour - 0.5) / 2).astype(np.int64)
        points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]  # repeats
        if len(points) < 3:
            continue
        before, after = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
        turn = (points - before)[:, 0] * (after - points)[:, 1] - (points - before)[:, 1] * (
            after - points
        )[:, 0]
        points = points[turn != 0]  # corners only
        if len(points) < 3:
            continue
        xy = np.column_stack([points[:, 1] + x0, points[:, 0] + y0])
        polygons.append([float(v) for v in xy.ravel()])
    return polygons


def _fill_polygons(
    polygons: Sequence[Sequence[float]], shape: tuple[int, ...], x0: int = 0, y0: int = 0
) -> np.ndarray:
    """Even-odd fill of COCO polygons (pixel-edge coordinates) on a ``shape`` grid whose
    top-left pixel is ``(x0, y0)``: a pixel is inside when its centre is."""
    from skimage.draw import polygon as draw_polygon

    filled = np.zeros(shape[:2], bool)
    for flat in polygons:
        xy = np.asarray(flat, dtype=float).reshape(-1, 2)
        # pixel (r, c) has its centre at (c + 0.5, r + 0.5) in edge coordinates
        rr, cc = draw_polygon(xy[:, 1] - y0 - 0.5, xy[:, 0] - x0 - 0.5, shape[:2])
        hit = np.zeros(shape[:2], bool)
        hit[rr, cc] = True
        filled ^= hit
    return filled


def coco_document(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One COCO document from per-(item, model) entries ``{"item", "file_name", "width",
    "height", "model", "annotations"}``.

    Each item is one image (its first entry gives the file name and size), whatever number
    of models annotated it; categories are ``model/class`` (``supercategory`` is the model).
    """
    images: list[dict[str, Any]] = []
    image_ids: dict[str, int] = {}
    annotations: list[dict[str, Any]] = []
    categories: dict[str, int] = {}
    for entry in entries:
        image_id = image_ids.get(entry["item"])
        if image_id is None:
            image_id = image_ids[entry["item"]] = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": entry["file_name"],
                    "width": entry["width"],
                    "height": entry["height"],
                    "medlabel_item": entry["item"],
                }
            )
        for ann in entry["annotations"]:
            key = f"{entry['model']}/{ann['category']}"
            if key not in categories:
                categories[key] = len(categories) + 1
            annotations.append(
                {
                    **{k: v for k, v in ann.items() if k != "category"},
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": categories[key],
                }
            )
    return {
        "info": {"description": "medlabel automatic annotations"},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i, "name": k.split("/", 1)[1], "supercategory": k.split("/", 1)[0]}
            for k, i in categories.items()
        ],
    }
