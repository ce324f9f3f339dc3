"""Mask outputs: DICOM SEG that highdicom parses back onto the right slices; COCO polygons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlabel.annotate.items import discover, read_item
from medlabel.annotate.outputs import coco_annotations, coco_document, write_dicom_seg
from medlabel.image import MedicalImage


def _series_and_mask(root: Path) -> tuple[MedicalImage, MedicalImage]:
    item = next(i for i in discover(root).items if i.kind == "dicom-series")
    image = read_item(item)
    labels = np.zeros(image.array.shape, np.uint8)
    labels[1, 2:6, 3:7] = 1  # one box on slice 1
    labels[3, 5:9, 1:4] = 2  # another class on slice 3 only
    return image, image.with_array(labels, is_label=True)


def test_dicom_seg_references_the_series_and_lines_up_slice_by_slice(
    mixed_archive: Path, tmp_path: Path
) -> None:
    import highdicom as hd
    import pydicom

    image, mask = _series_and_mask(mixed_archive)
    files = image.metadata["source_files"]
    out = tmp_path / "mask.seg.dcm"
    classes = {1: "lung_right", 2: "heart"}
    assert write_dicom_seg(mask, classes, files, out, model_name="m", model_version="1") is None
    seg = hd.seg.segread(out)
    sources = [pydicom.dcmread(f) for f in files]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    labels = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    assert labels == {1: "lung_right", 2: "heart"}
    # frames as stored for each source slice, in our volume's slice order
    uids = [s.SOPInstanceUID for s in sources]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=True
    )
    np.testing.assert_array_equal(pixels, mask.array)


def test_nothing_found_still_gives_a_seg_with_empty_segments(
    mixed_archive: Path, tmp_path: Path
) -> None:
    import highdicom as hd
    import pydicom

    image, mask = _series_and_mask(mixed_archive)
    files = image.metadata["source_files"]
    empty = mask.with_array(np.zeros_like(mask.array))
    out = tmp_path / "empty.seg.dcm"
    classes = {1: "lung_right", 2: "heart"}
    assert write_dicom_seg(empty, classes, files, out, model_name="m", model_version="1") is None
    seg = hd.seg.segread(out)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["lung_right", "heart"]
    uids = [pydicom.dcmread(f).SOPInstanceUID for f in files]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=True
    )
    assert pixels.shape == mask.array.shape and not pixels.any()


@pytest.mark.parametrize("pixel_spacing", [None, "0\\0", "0.143\\0.15"])
def test_a_radiograph_seg_reads_back_onto_the_radiograph(
    tmp_path: Path, pixel_spacing: str | None
) -> None:
    """CR/DX frames have no position in the patient: the SEG still reads back as a label map
    on the radiograph's grid, with its pixel size where the radiograph gives one and none
    made up where it does not."""
    import pydicom
    from pydicom.data import get_testdata_file

    from medlabel.io import read_image

    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))  # a CR, PixelSpacing 0\0
    del ds.PixelSpacing
    if pixel_spacing is not None:
        ds.PixelSpacing = pixel_spacing
    source = tmp_path / "cr.dcm"
    ds.save_as(source)
    before = source.read_bytes()
    image = read_image(source)
    labels = np.zeros(image.array.shape, np.uint8)
    labels[400:900, 300:800] = 1
    labels[1000:1200, 900:1400] = 3
    mask = image.with_array(labels, is_label=True)
    out = tmp_path / "cr.seg.dcm"
    classes = {1: "lung_right", 2: "lung_left", 3: "heart"}
    assert (
        write_dicom_seg(mask, classes, [str(source)], out, model_name="m", model_version="1")
        is None
    )
    assert source.read_bytes() == before  # the source is never modified
    back = read_image(out)
    assert back.is_label and back.size == image.size and back.origin == image.origin
    assert back.direction == image.direction
    assert back.spacing == pytest.approx(image.spacing)
    assert back.spacing_known == image.spacing_known == (pixel_spacing == "0.143\\0.15")
    assert back.metadata["segments"] == {1: "lung_right", 2: "heart"}  # the classes found
    np.testing.assert_array_equal(back.array, np.where(labels == 3, 2, labels))


def test_a_seg_holding_a_zero_pixel_spacing_still_reads(tmp_path: Path) -> None:
    """highdicom, left to itself, copies a CR's 0\\0 spacing into the SEG and cannot read that
    SEG back; medlabel reads it as a label map without a known pixel size."""
    import highdicom as hd
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.sr.codedict import codes

    from medlabel.io import read_image

    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))  # PixelSpacing 0\0
    labels = np.zeros((1, ds.Rows, ds.Columns), np.uint8)
    labels[0, 100:300, 200:500] = 1
    algorithm = hd.AlgorithmIdentificationSequence(
        name="other", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    seg = hd.seg.Segmentation(
        source_images=[ds],
        pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=1,
                segment_label="lung",
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Lung,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
        ],
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="another tool",
        manufacturer_model_name="x",
        software_versions="1",
        device_serial_number="0",
    )
    seg.save_as(tmp_path / "other.seg.dcm")
    with pytest.raises(AttributeError):  # the library that wrote it
        hd.seg.segread(tmp_path / "other.seg.dcm")
    back = read_image(tmp_path / "other.seg.dcm")
    assert back.size == (ds.Columns, ds.Rows) and not back.spacing_known
    np.testing.assert_array_equal(back.array, labels[0])


def test_dicom_seg_is_refused_with_a_reason(mixed_archive: Path, tmp_path: Path) -> None:
    image, mask = _series_and_mask(mixed_archive)
    files = image.metadata["source_files"]
    assert "resampled" in str(
        write_dicom_seg(
            mask, {1: "a", 2: "b"}, files[:3], tmp_path / "r.dcm", model_name="m", model_version="1"
        )
    )
    assert not list(tmp_path.glob("*.dcm"))


def test_coco_polygons_bbox_and_area() -> None:
    m = np.zeros((40, 50), np.uint8)
    m[5:15, 10:30] = 1
    m[20:30, 5:10] = 1  # a second region of the same class
    m[25:35, 30:45] = 2
    anns = coco_annotations(MedicalImage(m, is_label=True), {1: "lung", 2: "heart"})
    assert [a["category"] for a in anns] == ["lung", "lung", "heart"]
    assert anns[0]["bbox"] == [10.0, 5.0, 20.0, 10.0] and anns[0]["area"] == 200.0
    poly = np.asarray(anns[0]["segmentation"][0]).reshape(-1, 2)
    assert poly[:, 0].min() == pytest.approx(9.5) and poly[:, 0].max() == pytest.approx(29.5)
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
