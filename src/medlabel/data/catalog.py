"""The official MedMNIST v2 data sets: where to download them and how to check them.

Checksums (MD5) are those published by the MedMNIST authors for the 28-pixel files on Zenodo
(record 6496656). MedMNIST+ sizes 64, 128 and 224 (record 10519652, files named
``<flag>_<size>.npz``) have no checksum recorded here: pass one yourself to verify them.
All MedMNIST data is licensed CC BY 4.0 (Yang et al., Scientific Data 2023).

Example:
    >>> info = MEDMNIST["pneumoniamnist"]
    >>> info.task, info.labels, info.dims
    ('binary', ('normal', 'pneumonia'), 2)
    >>> medmnist_url("pneumoniamnist", 28).endswith("pneumoniamnist.npz?download=1")
    True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MEDMNIST", "MedMNISTInfo", "medmnist_url"]

_RECORD_28 = "https://zenodo.org/records/6496656/files/{flag}.npz?download=1"
_RECORD_PLUS = "https://zenodo.org/records/10519652/files/{flag}_{size}.npz?download=1"


@dataclass(frozen=True)
class MedMNISTInfo:
    """Facts about one MedMNIST flag."""

    flag: str
    task: str  # binary, multiclass, multilabel, ordinal
    labels: tuple[str, ...]
    channels: int
    dims: int
    md5_28: str
    n_train: int
    n_val: int
    n_test: int
    licence: str = "CC BY 4.0"


_ORGAN = (
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
)

MEDMNIST: dict[str, MedMNISTInfo] = {
    i.flag: i
    for i in (
        MedMNISTInfo(
            "pathmnist",
            "multiclass",
            (
                "adipose",
                "background",
                "debris",
                "lymphocytes",
                "mucus",
                "smooth muscle",
                "normal colon mucosa",
                "cancer-associated stroma",
                "colorectal adenocarcinoma epithelium",
            ),
            3,
            2,
            "a8b06965200029087d5bd730944a56c1",
            89996,
            10004,
            7180,
        ),
        MedMNISTInfo(
            "chestmnist",
            "multilabel",
            (
                "atelectasis",
                "cardiomegaly",
                "effusion",
                "infiltration",
                "mass",
                "nodule",
                "pneumonia",
                "pneumothorax",
                "consolidation",
                "edema",
                "emphysema",
                "fibrosis",
                "pleural",
                "hernia",
            ),
            1,
            2,
            "02c8a6516a18b556561a56cbdd36c4a8",
            78468,
            11219,
            22433,
        ),
        MedMNISTInfo(
            "dermamnist",
            "multiclass",
            (
                "actinic keratoses and intraepithelial carcinoma",
                "basal cell carcinoma",
                "benign keratosis-like lesions",
                "dermatofibroma",
                "melanoma",
                "melanocytic nevi",
                "vascular lesions",
            ),
            3,
            2,
            "0744692d530f8e62ec473284d019b0c7",
            7007,
            1003,
            2005,
        ),
        MedMNISTInfo(
            "octmnist",
            "multiclass",
            ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
            1,
            2,
            "c68d92d5b585d8d81f7112f81e2d0842",
            97477,
            10832,
            1000,
        ),
        MedMNISTInfo(
            "pneumoniamnist",
            "binary",
            ("normal", "pneumonia"),
            1,
            2,
            "28209eda62fecd6e6a2d98b1501bb15f",
            4708,
            524,
            624,
        ),
        MedMNISTInfo(
            "retinamnist",
            "ordinal",
            ("0", "1", "2", "3", "4"),
            3,
            2,
            "bd4c0672f1bba3e3a89f0e4e876791e4",
            1080,
            120,
            400,
        ),
        MedMNISTInfo(
            "breastmnist",
            "binary",
            ("malignant", "normal, benign"),
            1,
            2,
            "750601b1f35ba3300ea97c75c52ff8f6",
            546,
            78,
            156,
        ),
        MedMNISTInfo(
            "bloodmnist",
            "multiclass",
            (
                "basophil",
                "eosinophil",
                "erythroblast",
                "immature granulocytes",
                "lymphocyte",
                "monocyte",
                "neutrophil",
                "platelet",
            ),
            3,
            2,
            "7053d0359d879ad8a5505303e11de1dc",
            11959,
            1712,
            3421,
        ),
        MedMNISTInfo(
            "tissuemnist",
            "multiclass",
            (
                "Collecting Duct, Connecting Tubule",
                "Distal Convoluted Tubule",
                "Glomerular endothelial cells",
                "Interstitial endothelial cells",
                "Leukocytes",
                "Podocytes",
                "Proximal Tubule Segments",
                "Thick Ascending Limb",
            ),
            1,
            2,
            "ebe78ee8b05294063de985d821c1c34b",
            165466,
            23640,
            47280,
        ),
        MedMNISTInfo(
            "organamnist",
            "multiclass",
            _ORGAN,
            1,
            2,
            "866b832ed4eeba67bfb9edee1d5544e6",
            34581,
            6491,
            17778,
        ),
        MedMNISTInfo(
            "organcmnist",
            "multiclass",
            _ORGAN,
            1,
            2,
            "0afa5834fb105f7705a7d93372119a21",
            13000,
            2392,
            8268,
        ),
        MedMNISTInfo(
            "organsmnist",
            "multiclass",
            _ORGAN,
            1,
            2,
            "e5c39f1af030238290b9557d9503af9d",
            13940,
            2452,
            8829,
        ),
        MedMNISTInfo(
            "organmnist3d",
            "multiclass",
            (
                "liver",
                "kidney-right",
                "kidney-left",
                "femur-right",
                "femur-left",
                "bladder",
                "heart",
                "lung-right",
                "lung-left",
                "spleen",
                "pancreas",
            ),
            1,
            3,
            "21f0a239e7f502e6eca33c3fc453c0b6",
            972,
            161,
            610,
        ),
        MedMNISTInfo(
            "nodulemnist3d",
            "binary",
            ("benign", "malignant"),
            1,
            3,
            "8755a7e9e05a4d9ce80a24c3e7a256f3",
            1158,
            165,
            310,
        ),
        MedMNISTInfo(
            "adrenalmnist3d",
            "binary",
            ("normal", "hyperplasia"),
            1,
            3,
            "bbd3c5a5576322bc4cdfea780653b1ce",
            1188,
            98,
            298,
        ),
        MedMNISTInfo(
            "fracturemnist3d",
            "multiclass",
            ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
            1,
            3,
            "6aa7b0143a6b42da40027a9dda61302f",
            1027,
            103,
            240,
        ),
        MedMNISTInfo(
            "vesselmnist3d",
            "binary",
            ("vessel", "aneurysm"),
            1,
            3,
            "2ba5b80617d705141f3f85627108fce8",
            1335,
            192,
            382,
        ),
        MedMNISTInfo(
            "synapsemnist3d",
            "binary",
            ("inhibitory synapse", "excitatory synapse"),
            1,
            3,
            "1235b78a3cd6280881dd7850a78eadb6",
            1230,
            177,
            352,
        ),
    )
}


def medmnist_url(flag: str, size: int = 28) -> str:
    """Official download address of a MedMNIST file (28 px: v2; 64/128/224: MedMNIST+)."""
    if flag not in MEDMNIST:
        raise KeyError(f"unknown MedMNIST flag {flag!r}; known: {', '.join(sorted(MEDMNIST))}")
    if size == 28:
        return _RECORD_28.format(flag=flag)
    if size not in (64, 128, 224):
        raise ValueError(f"MedMNIST sizes are 28, 64, 128 and 224, not {size}")
    return _RECORD_PLUS.format(flag=flag, size=size)
