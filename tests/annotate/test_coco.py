"""COCO annotations (medlabel.annotate.coco): polygons on pixel edges and RLE that decode
back to the mask, one image per item."""

from __future__ import annotations

import numpy as np

from medlabel.annotate.coco import coco_annotations, coco_document
from medlabel.image import MedicalImage


def test_coco_polygons_bbox_and_area() -> None:
    m = np.zeros((40, 50), np.uint8)
    m[5:15, 10:30] = 1
    m[20:30, 5:10] = 1  # a second region of the same class
    m[25:35, 30:45] = 2
    anns = coco_annotations(MedicalImage(m, is_label=True), {1: "lung", 2: "heart"})
    assert [a["category"] for a in anns] == ["lung", "lung", "heart"]
    assert anns[0]["bbox"] == [10.0, 5.0, 20.0, 10.0] and anns[0]["area"] == 200.0
    poly = np.asarray(anns[0]["segmentation"][0]).reshape(-1, 2)
    # COCO coordinates run along pixel edges: columns 10..29 span x from 10 to 30
    assert poly[:, 0].min() == 10.0 and poly[:, 0].max() == 30.0
    assert poly[:, 1].min() == 5.0 and poly[:, 1].max() == 15.0
    doc = coco_document(
        [
            {
                "item": "a",
                "file_name": "a.png",
                "width": 50,
                "height": 40,
                "model": "m",
                "annotations": anns,
            }
        ]
    )
    assert [c["name"] for c in doc["categories"]] == ["lung", "heart"]
    assert {a["image_id"] for a in doc["annotations"]} == {1} and len(doc["annotations"]) == 3


# ----------------------------------------------------------------------------- DICOM SEG


def _rasterise(polygons: list[list[float]], shape: tuple[int, int]) -> np.ndarray:
    """Even-odd fill of COCO polygons: a pixel is inside when its centre is."""
    from skimage.draw import polygon

    filled = np.zeros(shape, bool)
    for flat in polygons:
        xy = np.asarray(flat, float).reshape(-1, 2)
        hit = np.zeros(shape, bool)
        rr, cc = polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)
        hit[rr, cc] = True
        filled ^= hit
    return filled


def _decode_rle(rle: dict[str, object], shape: tuple[int, int]) -> np.ndarray:
    """Uncompressed COCO RLE: column-major runs, zeros first."""
    assert rle["size"] == list(shape)
    counts = np.asarray(rle["counts"], np.int64)
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return flat.reshape(shape, order="F")


def _decoded(ann: dict[str, object], shape: tuple[int, int]) -> np.ndarray:
    seg = ann["segmentation"]
    if isinstance(seg, dict):
        return _decode_rle(seg, shape)
    assert isinstance(seg, list)
    return _rasterise(seg, shape)


def test_coco_polygons_lie_on_pixel_edges_and_rasterise_back() -> None:
    """COCO puts pixel (r, c) in the square [c, c+1] x [r, r+1]: a mask touching the border
    gives coordinates of 0 and of the width and height, never -0.5."""
    m = np.zeros((30, 40), np.uint8)
    m[0:12, 0:15] = 1  # at the top-left corner
    m[20:30, 25:40] = 1  # at the bottom-right corner
    m[14:18, 3:9] = 1
    m[15, 9:20] = 1  # a one-pixel-wide arm
    anns = coco_annotations(MedicalImage(m, is_label=True), {1: "lung"})
    for ann in anns:
        assert isinstance(ann["segmentation"], list)
        points = np.concatenate([np.reshape(p, (-1, 2)) for p in ann["segmentation"]])
        assert points.min() >= 0 and points[:, 0].max() <= 40 and points[:, 1].max() <= 30
    corner = np.reshape(anns[0]["segmentation"][0], (-1, 2))
    assert sorted(map(tuple, corner)) == [(0, 0), (0, 12), (15, 0), (15, 12)]
    union = np.zeros(m.shape, int)
    for ann in anns:
        union += _decoded(ann, m.shape)
    np.testing.assert_array_equal(union, m)


def test_coco_round_trips_random_masks() -> None:
    """Every region decodes back to itself: polygons where it has no holes, RLE where it has;
    ``area`` is its pixel count and ``bbox`` its bounds."""
    from scipy import ndimage

    rng = np.random.default_rng(7)
    kinds = set()
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(5, 40, 2))
        smooth = ndimage.gaussian_filter(rng.random((h, w)), float(rng.uniform(0.7, 2.5)))
        m = (smooth > np.median(smooth)).astype(np.uint8)
        m[rng.random((h, w)) < 0.03] = 2
        anns = coco_annotations(MedicalImage(m, is_label=True), {1: "a", 2: "b"})
        for value, name in ((1, "a"), (2, "b")):
            union = np.zeros(m.shape, int)
            for ann in (a for a in anns if a["category"] == name):
                region = _decoded(ann, m.shape)
                kinds.add(type(ann["segmentation"]).__name__)
                ys, xs = np.nonzero(region)
                assert ann["area"] == region.sum()
                assert ann["bbox"] == [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]
                union += region
            np.testing.assert_array_equal(union, m == value)
    assert kinds == {"list", "dict"}


def test_coco_region_with_a_hole_is_written_as_rle() -> None:
    """Filled polygons would cover a hole (the union of outer and inner outline): such a
    region is an uncompressed RLE whose area excludes the hole."""
    m = np.zeros((20, 30), np.uint8)
    m[0:10, 0:10] = 1
    m[3:6, 4:7] = 0  # a hole
    m[12:18, 15:25] = 1  # no hole: stays a polygon
    first, second = coco_annotations(MedicalImage(m, is_label=True), {1: "lung"})
    rle = first["segmentation"]
    assert isinstance(rle, dict) and rle["size"] == [20, 30]
    assert rle["counts"][0] == 0  # the first pixel (column-major) is inside
    ring = m.copy()
    ring[:, 12:] = 0  # the first region alone
    np.testing.assert_array_equal(_decode_rle(rle, (20, 30)), ring)
    assert first["area"] == 100 - 9 and first["bbox"] == [0.0, 0.0, 10.0, 10.0]
    assert isinstance(second["segmentation"], list) and second["area"] == 60


def test_coco_document_has_one_image_per_item() -> None:
    """An item annotated by two models (say ct-lungs and ct-bone) is one image entry whose
    annotations come from both, each under its own model's category."""
    m = np.zeros((10, 10), np.uint8)
    m[2:5, 2:5] = 1
    anns = coco_annotations(MedicalImage(m, is_label=True), {1: "lung_right"})
    bone = coco_annotations(MedicalImage(m, is_label=True), {1: "bone"})

    def entry(item: str, model: str, annotations: list[dict[str, object]]) -> dict[str, object]:
        return {
            "item": item,
            "file_name": f"{item}.dcm",
            "width": 10,
            "height": 10,
            "model": model,
            "annotations": annotations,
        }

    doc = coco_document(
        [
            entry("a", "ct-lungs", anns),
            entry("a", "ct-bone", bone),
            entry("b", "ct-lungs", anns),
            entry("b", "other", anns),
        ]
    )
    assert [(i["id"], i["file_name"]) for i in doc["images"]] == [(1, "a.dcm"), (2, "b.dcm")]
    by_image = {i: [a for a in doc["annotations"] if a["image_id"] == i] for i in (1, 2)}
    assert len(by_image[1]) == 2 and len(by_image[2]) == 2
    cats = {c["id"]: (c["supercategory"], c["name"]) for c in doc["categories"]}
    assert sorted(cats.values()) == [
        ("ct-bone", "bone"),
        ("ct-lungs", "lung_right"),
        ("other", "lung_right"),
    ]
    assert {cats[a["category_id"]][0] for a in by_image[1]} == {"ct-lungs", "ct-bone"}
    assert len({a["id"] for a in doc["annotations"]}) == 4
