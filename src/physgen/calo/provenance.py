"""File-level provenance as one JSON string, for formats without HDF5 attributes.

ROOT files and ``.npz`` archives hold a CaloChallenge file's root attributes as one JSON
document, ``{"physgen_provenance": 1, "attrs": {...}, "dtypes": {...}}``: strings,
integers (int64), floats (float64) and booleans as JSON values; other NumPy dtypes,
arrays and byte strings with their dtype in ``dtypes``, so that writing the attributes
back to HDF5 restores their values and types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from physgen.errors import DataFormatError

__all__ = ["provenance_from_json", "provenance_to_json"]

_DEFAULT_INT = np.dtype(np.int64)
_DEFAULT_FLOAT = np.dtype(np.float64)


def provenance_to_json(attrs: Mapping[str, Any]) -> str:
    """Encode file attributes as one JSON string that :func:`provenance_from_json` inverts.

    Strings, ``int`` (int64), ``float`` (float64) and ``bool`` are stored as JSON values;
    other NumPy scalar and array dtypes and byte strings are recorded in ``dtypes`` so
    that they come back with their type. Other values are stored as text.
    """
    values: dict[str, Any] = {}
    dtypes: dict[str, str] = {}
    for key, v in attrs.items():
        if isinstance(v, (bytes, np.bytes_)):
            values[key], dtypes[key] = bytes(v).decode("latin-1"), "bytes"
        elif isinstance(v, (str, bool, np.bool_)):
            values[key] = v if isinstance(v, str) else bool(v)
        elif isinstance(v, (int, float)):
            values[key] = v
        elif isinstance(v, (np.integer, np.floating)):
            values[key] = v.item()
            if v.dtype not in (_DEFAULT_INT, _DEFAULT_FLOAT):
                dtypes[key] = str(v.dtype)
        elif isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            values[key], dtypes[key] = v.tolist(), f"{v.dtype}[]"
        elif isinstance(v, (dict, list, tuple)) or v is None:
            values[key] = json.dumps(v, sort_keys=True, default=str)
        else:
            values[key] = str(v)
    doc = {"physgen_provenance": 1, "attrs": values, "dtypes": dtypes}
    return json.dumps(doc, sort_keys=True)


def provenance_from_json(text: str, where: str = "provenance") -> dict[str, Any]:
    """Decode :func:`provenance_to_json` into attribute values (NumPy types where recorded).

    Raises:
        DataFormatError: Not such a JSON document.
    """
    try:
        doc = json.loads(text)
        values, dtypes = doc["attrs"], doc.get("dtypes", {})
        if not isinstance(values, dict) or not isinstance(dtypes, dict):
            raise TypeError("attrs and dtypes must be objects")
        out: dict[str, Any] = {}
        for key, v in values.items():
            kind = dtypes.get(key)
            if kind is None:
                out[key] = v
            elif kind == "bytes":
                out[key] = np.bytes_(str(v).encode("latin-1"))
            elif kind.endswith("[]"):
                out[key] = np.asarray(v, dtype=np.dtype(kind[:-2]))
            else:
                out[key] = np.dtype(kind).type(v)
        return out
    except (ValueError, TypeError, KeyError) as exc:
        raise DataFormatError(f"{where}: not a physgen provenance JSON document ({exc})") from exc
