"""Datasets for training and evaluation: sources, splits, MedMNIST catalogue and download.

Example:
    >>> from medlabel.data import MEDMNIST, open_dataset
    >>> MEDMNIST["pneumoniamnist"].n_test
    624
"""

from medlabel.data.catalog import MEDMNIST, MedMNISTInfo, medmnist_url
from medlabel.data.dataset import SPLITS, ClassificationDataset, DatasetError
from medlabel.data.download import DownloadError, download_medmnist
from medlabel.data.sources import from_csv, from_folder, from_medmnist, open_dataset

__all__ = [
    "MEDMNIST",
    "SPLITS",
    "ClassificationDataset",
    "DatasetError",
    "DownloadError",
    "MedMNISTInfo",
    "download_medmnist",
    "from_csv",
    "from_folder",
    "from_medmnist",
    "medmnist_url",
    "open_dataset",
]
