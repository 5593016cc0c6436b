"""Build ``type2_sequences.json``: the Type (1 or 2) of Table E.1-1's conditional sequences per IOD.

``X/Z``, ``X/D``, ``Z/D`` and ``X/Z/D`` on a sequence choose by the sequence's
Type in the IOD: remove it (Type 3), leave it empty (Type 2) or keep dummy items
(Type 1); an empty sequence is invalid where the IOD asks for 1-n items.  Which
IODs make which sequence Type 2 is read from dicom3tools' validator (David
Clunie's ``dciodvfy``, Debian package ``dicom3tools``): for every storage SOP
class of pydicom's UID dictionary a dataset holding nothing but its SOP Class
and Instance UID is validated, and "Missing attribute Type 2 Required
Element=<...>" and "Type 1 Required" name them (mandatory modules only: a
sequence of an optional module is removed with it).  Run from the repository root::

    python slicebox/dicom/data/build_type2_sequences.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_JSON = os.path.join(HERE, "type2_sequences.json")
TABLE = os.path.join(HERE, "ps315_annex_e.json")
#: conditional codes whose choice for a sequence depends on its Type in the IOD
CONDITIONAL = ("X/Z", "X/D", "Z/D", "X/Z/D")


def _candidates() -> dict[str, str]:
    with open(TABLE, encoding="utf-8") as fh:
        data = json.load(fh)
    return {a["keyword"]: a["tag"] for a in data["attributes"]
            if a["vr"] == "SQ" and a["basic"] in CONDITIONAL and a.get("keyword")}


def _types(uid: str, candidates: dict[str, str], tmp: str) -> tuple[str, dict[str, list[str]]]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = uid, generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = uid, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = os.path.join(tmp, uid + ".dcm")
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run(["dciodvfy", path], capture_output=True, text=True, errors="replace", check=False)
    text = run.stdout + run.stderr
    return uid, {t: sorted(tag for kw, tag in candidates.items() if f"Type {t} Required Element=<{kw}>" in text)
                 for t in ("1", "2")}


def main() -> int:
    from pydicom.uid import UID_dictionary

    candidates = _candidates()
    classes = sorted(u for u, v in UID_dictionary.items()
                     if v[1] == "SOP Class" and "Storage" in v[0] and v[3] != "Retired")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(4) as pool:
        found = dict(pool.map(lambda u: _types(u, candidates, tmp), classes))
    data = {"source": "dicom3tools dciodvfy, one minimal dataset per storage SOP class",
            "candidates": sorted(candidates.values()),
            "sop_classes": {u: {t: tags for t, tags in types.items() if tags}
                            for u, types in sorted(found.items()) if any(types.values())}}
    with open(OUT_JSON, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"{len(data['sop_classes'])} of {len(classes)} SOP classes require a conditional sequence")
    return 0


if __name__ == "__main__":
    sys.exit(main())
