"""Features of labelled regions: IBSI radiomics through PyRadiomics.

* :func:`extract_radiomics` — the features of one region of one image;
* :func:`extract_many` — a batch of ``(id, image, mask)``, one row per (id, label), failures
  recorded as rows with an ``error``;
* :func:`write_features` — those rows as a CSV or JSON table;
* :func:`load_params` / :func:`params_from_diagnostics` — PyRadiomics parameter sets from files,
  mappings, or the diagnostics of an earlier run.

PyRadiomics is imported on first use, so importing this package is cheap.

Example:
    >>> from medlabel.features import FeatureError, load_params
    >>> load_params({"binWidth": 25})
    {'setting': {'binWidth': 25}}
"""

from medlabel.features.params import SECTIONS, FeatureError, load_params, params_from_diagnostics
from medlabel.features.radiomics import TEXTURE_CLASSES, extract_many, extract_radiomics
from medlabel.features.table import FIRST_COLUMNS, feature_columns, write_features

__all__ = [
    "FIRST_COLUMNS",
    "SECTIONS",
    "TEXTURE_CLASSES",
    "FeatureError",
    "extract_many",
    "extract_radiomics",
    "feature_columns",
    "load_params",
    "params_from_diagnostics",
    "write_features",
]
