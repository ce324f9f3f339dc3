"""DICOM reading: files, series folders, DICOMDIR, enhanced multi-frame and SEG.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> read_dicom(get_testdata_file("MR_small.dcm")).modality
    'MR'
"""

from medlabel.io.dicom.reader import read_dicom, read_dicom_file, read_dicom_series
from medlabel.io.dicom.series import SeriesInfo, SeriesScan, scan_series, select_series

__all__ = [
    "SeriesInfo",
    "SeriesScan",
    "read_dicom",
    "read_dicom_file",
    "read_dicom_series",
    "scan_series",
    "select_series",
]
