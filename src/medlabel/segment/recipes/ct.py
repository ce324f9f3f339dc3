"""CT recipes by Hounsfield units: body outline, lungs, bone, fat and soft tissue.

All of them start from the body outline (``ct-body``): voxels above -300 HU, opened by 3 mm
so the patient table and thin straps come loose; the trunk is kept with any limb beside it
(a piece thick enough to hold a 2 cm ball), and holes are filled slice by slice. Sizes are
in millimetres, so the recipes behave alike on thin and thick slices.

``ct-lungs`` keeps air-filled regions inside the body whose core holds lung tissue (median
above -950 HU) and not pure gas (bowel, stomach), removes the trachea and main bronchi by
region growing from the trachea, and names each lung by its side in the patient (world LPS
``x``), so the result is right whatever the storage orientation.

Example:
    >>> from medlabel.segment.recipes.ct import chest_phantom
    >>> ct, truth = chest_phantom()
    >>> seg = run_recipe("ct-lungs", ct)
    >>> sorted(set(seg.array.ravel().tolist()))
    [0, 1, 2]
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import apply_hysteresis_threshold

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.segment.blocks import (
    close,
    connected_components,
    dilate,
    erode,
    fill_holes,
    fill_small_holes,
    open_,
    region_grow,
    remove_border_touching,
    remove_small,
    threshold,
)
from medlabel.segment.blocks._spacing import numpy_spacing, voxel_volume
from medlabel.segment.recipes.base import Recipe, register, run_recipe

__all__ = [
    "axial_axis",
    "body_mask",
    "bone_low_hu",
    "bone_mask",
    "chest_phantom",
    "lung_labels",
    "run_recipe",
]

#: Body voxels are above this (mattresses and table foam are lower).
BODY_HU = -300.0
#: Lung candidates are air-like voxels (HU below this) inside the body.
LUNG_AIR_HU = -320.0
#: A candidate whose eroded core has a median below this is gas (bowel, stomach), not lung.
GAS_CORE_HU = -950.0
#: Smallest lung piece kept (mL).
MIN_LUNG_ML = 5.0
#: A body piece apart from the trunk is a limb if a ball of this radius (mm) fits inside it.
LIMB_MM = 20.0


def axial_axis(image: MedicalImage) -> int:
    """NumPy axis of ``image`` closest to the patient's head-feet direction."""
    dz = np.abs(image.direction_matrix[2])  # world z component of each ITK index axis
    return image.ndim - 1 - int(np.argmax(dz))


def _hu(image: MedicalImage) -> np.ndarray:
    values = np.asarray(image.array, dtype=np.float32)
    lo, hi = np.percentile(values, [0.5, 99.5])
    if lo > -500 or hi < -200:
        raise MedlabelError(
            image.metadata.get("path"),
            f"most values (0.5th to 99.5th percentile) lie from {lo:.0f} to {hi:.0f}: this does "
            "not look like a CT in Hounsfield units (air near -1000 is expected)",
        )
    return values


def body_mask(image: MedicalImage, hu: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the patient's body, without table, clothing straps or outside air.

    ``hu`` passes the voxels already converted by :func:`_hu` (saves a second conversion).
    """
    hu = _hu(image) if hu is None else hu
    opened = open_(hu > BODY_HU, 3.0, image.spacing)
    labels, n = connected_components(opened)
    if n == 0:
        return opened
    sizes = np.bincount(labels.ravel())[1:]
    # the trunk and anything at least a tenth its size; smaller pieces are limbs when thick
    # (kept: arms beside the trunk) and the table or cables when thin (dropped)
    keep = [int(k) for k in np.flatnonzero(sizes >= 0.1 * sizes.max()) + 1]
    pieces = np.flatnonzero((sizes >= 0.01 * sizes.max()) & (sizes < 0.1 * sizes.max())) + 1
    boxes = ndi.find_objects(labels)
    sampling = numpy_spacing(image.spacing, image.ndim)
    for piece in pieces:
        # the piece's bounding box and one voxel of background around it (within the image):
        # the same distances as over the whole image, at a fraction of the cost
        box = tuple(
            slice(max(b.start - 1, 0), min(b.stop + 1, n))
            for b, n in zip(boxes[piece - 1], labels.shape, strict=True)
        )
        depth = ndi.distance_transform_edt(labels[box] == piece, sampling=sampling)
        if float(depth.max()) >= LIMB_MM:
            keep.append(int(piece))
    body = np.isin(labels, keep)
    if image.ndim == 3:
        body = fill_holes(body, axis=axial_axis(image))
    return fill_holes(body)


def _airways(hu: np.ndarray, candidates: np.ndarray, image: MedicalImage, axis: int) -> np.ndarray:
    """Trachea and main bronchi: pure air grown from the trachea in the top slices."""
    world_z = (
        image.direction_matrix[2, image.ndim - 1 - axis] * image.spacing[image.ndim - 1 - axis]
    )
    order = range(hu.shape[axis] - 1, -1, -1) if world_z > 0 else range(hu.shape[axis])
    pixel_area = voxel_volume(image.spacing, 3) / image.spacing[image.ndim - 1 - axis]
    for k in list(order)[:3]:  # the trachea shows in the most superior slices of a chest CT
        plane = np.take(candidates & (hu < -900), k, axis=axis)
        labels, n = connected_components(plane)
        for i in range(1, n + 1):
            area = float((labels == i).sum()) * pixel_area
            if 80.0 <= area <= 700.0:  # 1-7 cm^2: a trachea, not a lung apex
                seed_2d = np.argwhere(labels == i)[0]
                seed = list(seed_2d)
                seed.insert(axis, k)
                for upper in (-950.0, -980.0, -1000.0):
                    grown = region_grow(hu, [seed], -2000.0, upper) & candidates
                    if grown.sum() * voxel_volume(
                        image.spacing, 3
                    ) < 0.2 * candidates.sum() * voxel_volume(image.spacing, 3):
                        return dilate(grown, 1.5, image.spacing)
    return np.zeros(hu.shape, bool)


def lung_labels(image: MedicalImage) -> np.ndarray:
    """Label array: 1 right lung, 2 left lung (patient sides)."""
    hu = _hu(image)
    body = body_mask(image, hu)
    axis = axial_axis(image)
    in_plane = [a for a in range(3) if a != axis]
    air = remove_border_touching(threshold(hu, upper=LUNG_AIR_HU) & body, axes=in_plane)
    labels, n = connected_components(air)
    voxel_ml = voxel_volume(image.spacing, 3) / 1000.0
    lungs = np.zeros(hu.shape, bool)
    for i in range(1, n + 1):
        comp = labels == i
        if comp.sum() * voxel_ml < MIN_LUNG_ML:
            continue
        core = erode(comp, 3.0, image.spacing)
        if core.sum() * voxel_ml < 1.0:  # a thin sheet of air (under the back, in a fold)
            continue
        if float(np.median(hu[core])) > GAS_CORE_HU:
            lungs |= comp
    if not lungs.any():
        return np.zeros(hu.shape, np.uint8)
    lungs &= ~_airways(hu, lungs, image, axis)
    lungs = remove_small(lungs, MIN_LUNG_ML * 1000.0, image.spacing)
    lungs = fill_holes(close(lungs, 2.0, image.spacing), axis=axis)
    return _split_sides(lungs, image, body)


def _split_sides(lungs: np.ndarray, image: MedicalImage, body: np.ndarray) -> np.ndarray:
    """1 where the lung lies on the patient's right (world x < midline), 2 on the left."""
    idx = np.indices(lungs.shape, dtype=np.float32)
    # world x of every voxel: origin_x + sum over ITK axes of direction[0, a] * spacing[a] * i_a
    wx = np.full(lungs.shape, image.origin[0], np.float32)
    for itk_axis in range(image.ndim):
        np_axis = image.ndim - 1 - itk_axis
        wx += image.direction_matrix[0, itk_axis] * image.spacing[itk_axis] * idx[np_axis]
    labels, n = connected_components(lungs)
    midline = float(np.mean(wx[body])) if body.any() else float(np.mean(wx[lungs]))
    out = np.zeros(lungs.shape, np.uint8)
    for i in range(1, n + 1):
        comp = labels == i
        left_share = float(np.mean(wx[comp] > midline))
        if 0.15 < left_share < 0.85:  # lungs joined in front of the heart: cut at the midline
            out[comp & (wx <= midline)] = 1
            out[comp & (wx > midline)] = 2
        else:
            out[comp] = 2 if left_share >= 0.5 else 1
    return out


MARROW_MAX_MM2 = 2000.0
"""Largest cross-section (mm^2) of a cavity that :func:`bone_mask` fills as marrow."""


def bone_low_hu(spacing: tuple[float, ...]) -> float:
    """Lower (trabecular) bone threshold for voxels of this spacing.

    Thin voxels see bone at its own density, so 180 HU keeps contrast-filled vessels and
    cartilage out; thick voxels average thin bone with the tissue around it (partial volume),
    so the threshold falls to 120 HU at 20 mm^3 and above (log-linear in between).

    Example:
        >>> bone_low_hu((0.8, 0.8, 1.0)), bone_low_hu((3.0, 3.0, 3.0))
        (180.0, 120.0)
    """
    volume = voxel_volume(spacing, 3)
    return float(np.interp(np.log(volume), [np.log(4.0), np.log(20.0)], [180.0, 120.0]))


def bone_mask(image: MedicalImage) -> np.ndarray:
    """Bone: hysteresis between a trabecular threshold (:func:`bone_low_hu`, 120-180 HU by
    voxel size) and 300 HU (cortical) inside the body, marrow cavities filled slice by slice.

    Only cavities of at most :data:`MARROW_MAX_MM2` in every axial slice count as marrow (a
    lumbar vertebral body or a femoral head is about 15 cm^2): the inside of the skull, the
    pelvis or the chest, when bone closes a ring around it, is not bone."""
    hu = _hu(image)
    body = erode(body_mask(image, hu), 1.0, image.spacing)
    low = bone_low_hu(image.spacing if image.ndim == 3 else (*image.spacing, 1.0))
    bone = apply_hysteresis_threshold(np.where(body, hu, -1000.0), low, 300.0)
    bone = remove_small(bone, 300.0, image.spacing)
    bone = close(bone, 1.5, image.spacing)
    axis = axial_axis(image) if image.ndim == 3 else 0
    return fill_small_holes(bone, MARROW_MAX_MM2, image.spacing, axis=axis) & body


def _tissue(lower: float, upper: float):  # type: ignore[no-untyped-def]
    def run(image: MedicalImage) -> np.ndarray:
        hu = _hu(image)
        return threshold(hu, lower, upper) & body_mask(image, hu)

    return run


def chest_phantom(
    shape: tuple[int, int, int] = (24, 64, 64),
    spacing: tuple[float, float, float] = (5.0, 5.0, 8.0),
) -> tuple[MedicalImage, np.ndarray]:
    """A synthetic chest CT (LPS, identity direction) and its truth: 1 right lung, 2 left lung,
    3 bone (spine). Soft tissue 40 HU, lungs about -850 HU with trachea and bronchi at
    -1000 HU, a table under the patient, air elsewhere."""
    z, y, x = np.indices(shape).astype(np.float32)
    nz, ny, nx = shape
    rng = np.random.default_rng(0)
    hu = np.full(shape, -1000.0, np.float32)
    body = ((x - nx / 2) / (nx * 0.42)) ** 2 + ((y - ny / 2) / (ny * 0.32)) ** 2 <= 1
    hu[body] = 40.0
    truth = np.zeros(shape, np.uint8)
    for label, cx in ((1, nx * 0.32), (2, nx * 0.68)):  # x grows to the patient's left in LPS
        lung = ((x - cx) / (nx * 0.13)) ** 2 + ((y - ny / 2) / (ny * 0.2)) ** 2 + (
            (z - nz * 0.45) / (nz * 0.5)
        ) ** 2 <= 1
        truth[lung] = label
    hu[truth > 0] = -850.0
    trachea = ((x - nx / 2) ** 2 + (y - ny / 2 + 2) ** 2 <= 4) & (z >= nz * 0.6)
    hu[trachea] = -1000.0
    spine = ((x - nx / 2) ** 2 + (y - ny * 0.75) ** 2 <= 9) & body
    hu[spine] = 700.0
    truth[spine] = 3
    table = (y >= ny * 0.86) & (y <= ny * 0.9) & (np.abs(x - nx / 2) < nx * 0.45)
    hu[table] = 200.0
    hu += rng.normal(0, 15, shape).astype(np.float32)
    img = MedicalImage(hu.astype(np.int16), spacing=spacing, modality="CT")
    return img, truth


register(
    Recipe(
        "ct-body",
        ("CT",),
        3,
        {1: "body"},
        "patient body outline without the table",
        lambda im: body_mask(im),
    )
)
register(
    Recipe(
        "ct-lungs",
        ("CT",),
        3,
        {1: "lung_right", 2: "lung_left"},
        "left and right lung, trachea and main bronchi removed",
        lung_labels,
    )
)
register(
    Recipe(
        "ct-bone",
        ("CT",),
        3,
        {1: "bone"},
        "bone by hysteresis threshold (120-180/300 HU by voxel size)",
        bone_mask,
    )
)
register(
    Recipe(
        "ct-fat",
        ("CT",),
        3,
        {1: "fat"},
        "fat inside the body (-190 to -30 HU)",
        _tissue(-190.0, -30.0),
    )
)
register(
    Recipe(
        "ct-soft-tissue",
        ("CT",),
        3,
        {1: "soft_tissue"},
        "soft tissue inside the body (-29 to 150 HU)",
        _tissue(-29.0, 150.0),
    )
)
