"""DICOM SEG that highdicom parses back onto the right slices (series, multi-frame files,
radiographs), with clear reasons where none can be written (medlabel.annotate.dicom_seg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlabel.annotate.dicom_seg import segment_codes, write_dicom_seg
from medlabel.annotate.items import discover, read_item
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
    kinds = [
        (
            s.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning,
            s.SegmentedPropertyTypeCodeSequence[0].CodeValue,
        )
        for s in seg.SegmentSequence
    ]
    assert kinds == [("Anatomical Structure", "3341006"), ("Anatomical Structure", "80891009")]


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


def _seg_mask(image: MedicalImage) -> MedicalImage:
    labels = np.zeros(image.array.shape, np.uint8)
    labels[0, 100:200, 50:300] = 1  # only on the volume's first slice
    labels[-1, 300:350, 200:260] = 2  # and only on its last
    return image.with_array(labels, is_label=True)


def test_enhanced_multiframe_ct_gets_a_seg_frame_by_frame(tmp_path: Path) -> None:
    """An enhanced CT (one file, several frames) is referenced frame by frame; its frames are
    stored in the file in the reverse order of medlabel's volume, so the SEG frames must be
    matched by position, not by index."""
    import highdicom as hd
    import pydicom
    from pydicom.data import get_testdata_file

    from medlabel.io import read_image

    source = get_testdata_file("eCT_Supplemental.dcm")
    image = read_image(source)
    mask = _seg_mask(image)
    out = tmp_path / "ect.seg.dcm"
    classes = {1: "lung_right", 2: "bone"}
    assert write_dicom_seg(mask, classes, [source], out, model_name="m", model_version="1") is None
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    seg = hd.seg.segread(out)
    frames = seg.get_pixels_by_source_frame(
        ds.SOPInstanceUID,
        source_frame_numbers=list(range(1, int(ds.NumberOfFrames) + 1)),
        combine_segments=True,
        skip_overlap_checks=True,
    )
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):  # frame i -> its slice
        ipp = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        k = round(float(image.world_to_index(ipp)[2]))
        np.testing.assert_array_equal(frames[i], mask.array[k])
    back = read_image(out)  # and medlabel reads it back onto the mask's own grid
    np.testing.assert_array_equal(back.array, mask.array)
    assert back.origin == pytest.approx(image.origin) and back.direction == image.direction


def test_a_multiframe_file_without_frame_positions_gets_a_reason(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    from medlabel.io import read_image

    source = get_testdata_file("emri_small.dcm")  # enhanced MR without functional groups
    mask = read_image(source)
    mask = mask.with_array(np.ones(mask.array.shape, np.uint8), is_label=True)
    why = write_dicom_seg(
        mask, {1: "brain"}, [source], tmp_path / "s.dcm", model_name="m", model_version="1"
    )
    assert why is not None and "emri_small.dcm" in why and "position" in why
    assert "resampled" not in why and not (tmp_path / "s.dcm").exists()


def _blank_uids(files: list[str]) -> None:
    import pydicom

    for f in files:
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = ""
        ds.SeriesInstanceUID = ""
        ds.save_as(f)


def test_empty_study_and_series_uids_are_never_written_silently(
    mixed_archive: Path, tmp_path: Path
) -> None:
    """De-identified exports may blank the Study and Series Instance UIDs (Type 1 in a SEG):
    without a place for a note no SEG is written; with one, the SEG gets new UIDs and says so."""
    import highdicom as hd
    import pydicom

    image, mask = _series_and_mask(mixed_archive)
    files = image.metadata["source_files"]
    _blank_uids(files)
    classes = {1: "lung_right", 2: "heart"}
    out = tmp_path / "blank.seg.dcm"
    why = write_dicom_seg(mask, classes, files, out, model_name="m", model_version="1")
    assert why is not None and "StudyInstanceUID and SeriesInstanceUID" in why
    assert not out.exists()
    notes: list[str] = []
    assert (
        write_dicom_seg(mask, classes, files, out, model_name="m", model_version="1", notes=notes)
        is None
    )
    assert len(notes) == 1 and "new ones" in notes[0]
    seg = hd.seg.segread(out)
    assert seg.StudyInstanceUID and seg.StudyInstanceUID in notes[0]
    referenced = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert referenced and referenced in notes[0]
    uids = [pydicom.dcmread(f).SOPInstanceUID for f in files]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=True
    )
    np.testing.assert_array_equal(pixels, mask.array)
    # the same new UIDs for every SEG of that series
    again: list[str] = []
    write_dicom_seg(
        mask, classes, files, tmp_path / "b.dcm", model_name="n", model_version="1", notes=again
    )
    assert hd.seg.segread(tmp_path / "b.dcm").StudyInstanceUID == seg.StudyInstanceUID


def test_a_source_without_frame_of_reference_is_named_plainly(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    from medlabel.io import read_image

    source = get_testdata_file("693_UNCR.dcm")  # a CT slice without FrameOfReferenceUID
    image = read_image(source)
    mask = image.with_array(np.ones(image.array.shape, np.uint8), is_label=True)
    why = write_dicom_seg(
        mask, {1: "bone"}, [source], tmp_path / "s.dcm", model_name="m", model_version="1"
    )
    assert why == (
        "a DICOM SEG needs the source's Frame of Reference UID (FrameOfReferenceUID), and "
        "693_UNCR.dcm has none: no DICOM SEG written"
    )


def test_a_source_without_modality_still_gets_a_seg(mixed_archive: Path, tmp_path: Path) -> None:
    import highdicom as hd
    import pydicom

    image, mask = _series_and_mask(mixed_archive)
    files = image.metadata["source_files"]
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.Modality
        ds.save_as(f)
    out = tmp_path / "m.seg.dcm"
    why = write_dicom_seg(
        mask, {1: "lung_left", 2: "heart"}, files, out, model_name="m", model_version="1"
    )
    assert why is None
    seg = hd.seg.segread(out)
    assert seg.Modality == "SEG" and seg.ContentLabel == "MEDLABEL_SEG"


@pytest.mark.parametrize(
    ("name", "category", "code"),
    [
        ("lung_right", "91723000", "3341006"),
        ("lung_left", "91723000", "44029006"),
        ("right lung", "91723000", "3341006"),
        ("lung", "91723000", "39607008"),
        ("heart", "91723000", "80891009"),
        ("brain", "91723000", "12738006"),
        ("hippocampus", "91723000", "5366008"),
        ("bone", "85756007", "3138006"),
        ("fat", "85756007", "55603005"),
        ("soft_tissue", "85756007", "87784001"),
        ("anterior", "85756007", "anterior"),
    ],
)
def test_segment_codes(name: str, category: str, code: str) -> None:
    """Organs are anatomical structures with their SNOMED CT codes (right and left lung apart);
    bone, fat and soft tissue are tissues (DICOM CID 7166); other names a private code."""
    got_category, got_type = segment_codes(name)
    assert (got_category.value, got_type.value) == (category, code)
    assert got_category.scheme_designator == "SCT"
    assert got_type.scheme_designator == ("99MEDLABEL" if code == name else "SCT")


@pytest.mark.realdata
def test_real_multiframe_and_anonymised_series_segs(shared_data: Path, tmp_path: Path) -> None:
    """The real enhanced CT and the anonymised CT series (empty Study and Series UIDs)."""
    import highdicom as hd
    import pydicom

    from medlabel.annotate.items import discover, read_item
    from medlabel.io import read_image

    ect = shared_data / "dicom-samples" / "eCT_Supplemental.dcm"
    mask = _seg_mask(read_image(ect))
    out = tmp_path / "ect.seg.dcm"
    assert (
        write_dicom_seg(mask, {1: "a", 2: "b"}, [str(ect)], out, model_name="m", model_version="1")
        is None
    )
    np.testing.assert_array_equal(read_image(out).array, mask.array)
    (item,) = discover(shared_data / "ct-abdomen" / "dicom-series").items
    image = read_item(item)
    labels = np.zeros(image.array.shape, np.uint8)
    labels[2:9, 100:300, 150:350] = 1
    series_mask = image.with_array(labels, is_label=True)
    files = image.metadata["source_files"]
    out = tmp_path / "ct.seg.dcm"
    why = write_dicom_seg(series_mask, {1: "bone"}, files, out, model_name="m", model_version="1")
    assert why is not None and "empty StudyInstanceUID" in why and not out.exists()
    notes: list[str] = []
    assert (
        write_dicom_seg(
            series_mask, {1: "bone"}, files, out, model_name="m", model_version="1", notes=notes
        )
        is None
        and notes
    )
    uids = [pydicom.dcmread(f).file_meta.MediaStorageSOPInstanceUID for f in files]
    frames = hd.seg.segread(out).get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=True
    )
    np.testing.assert_array_equal(frames, labels)
