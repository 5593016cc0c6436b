"""Build ``ps315_annex_e.json`` (package data) from the PS3.15 Annex E CSV extracts.

Run from the repository root::

    python slicebox/dicom/data/build_profiles.py \
        --csv slicebox/dicom/data/source/ps315_annex_e.csv \
        --content-items slicebox/dicom/data/source/ps315_annex_e_content_items.csv \
        --notice slicebox/dicom/data/source/ps315_annex_e.NOTICE

The action codes are copied verbatim from the CSV (Table E.1-1, edition 2026d);
nothing is typed by hand.  Two things are *added* here, both derived rather
than typed:

* ``keyword`` and ``vr`` of each attribute from pydicom's data dictionary, so
  the engine can write a dummy value of the right VR even for implicit-VR data.
  Attributes newer than pydicom's dictionary get their VR from the standard's
  naming rule (a name ending in "Sequence" is SQ, in "DateTime" is DT) or stay
  ``""`` (the engine then takes the VR from the data).
* ``safe_private``: Table E.3.10-1 (safe private attributes).  The CSV does not
  contain it; pass ``--safe-private FILE`` (CSV with columns creator, group,
  element, action) to include it.  Without it the list is empty, and Retain
  Safe Private then retains nothing: every private attribute is removed.

The NOTICE file is copied next to the JSON, as its terms require.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_JSON = os.path.join(HERE, "ps315_annex_e.json")
OUT_NOTICE = os.path.join(HERE, "ps315_annex_e.NOTICE")

#: CSV option columns, in the order of Table E.1-1
OPTION_COLUMNS = (
    "retain_safe_private",
    "retain_uids",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_patient_characteristics",
    "retain_longitudinal_full_dates",
    "retain_longitudinal_modified_dates",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
)
ACTION_CODES = {"X", "Z", "D", "U", "K", "C", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}


def _vr_and_keyword(tag: int | None, name: str, mask_text: str | None) -> tuple[str, str, str]:
    """(vr, keyword, where the VR came from) for a tag, or for a mask like 60xx3000."""
    from pydicom.datadict import RepeatersDictionary, dictionary_keyword, dictionary_VR

    try:
        if tag is not None:
            return dictionary_VR(tag), dictionary_keyword(tag), "pydicom"
    except KeyError:
        pass
    # pydicom keys repeating groups by a mask string such as '60xx3000'
    entry = RepeatersDictionary.get(mask_text or "")
    if entry is not None:
        return entry[0], entry[4], "pydicom"
    if name.endswith("Sequence"):
        return "SQ", "", "name"
    if name.endswith("DateTime"):
        return "DT", "", "name"
    return "", "", "unknown"


def _action(value: str, where: str) -> str:
    value = value.strip()
    if value and value not in ACTION_CODES:
        raise SystemExit(f"unknown action code {value!r} in {where}")
    return value


def read_attributes(path: str) -> tuple[list[dict], dict]:
    attributes, private = [], None
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            options = {c: _action(row[c], f"{row['tag']}/{c}") for c in OPTION_COLUMNS if row[c].strip()}
            basic = _action(row["basic_profile"], row["tag"])
            if not basic:
                raise SystemExit(f"row {row['tag']} has no basic profile action")
            if row["tag"] == "PRIVATE":
                private = {"name": row["name"], "basic": basic, "options": options}
                continue
            group, element = row["group"].lower(), row["element"].lower()
            masked = "x" in group or "x" in element
            tag_text = (group + element).upper().replace("X", "x")
            tag = None if masked else int(group + element, 16)
            vr, keyword, vr_source = _vr_and_keyword(tag, row["name"], tag_text if masked else None)
            attributes.append({
                "tag": tag_text,
                "name": row["name"],
                "keyword": keyword,
                "vr": vr,
                "vr_source": vr_source,
                "retired": row["retired"] == "1",
                "in_std_iod": row["in_std_iod"] == "1",
                "basic": basic,
                "options": options,
            })
    if private is None:
        raise SystemExit("the CSV has no PRIVATE row")
    tags = [a["tag"] for a in attributes]
    if len(tags) != len(set(tags)):
        raise SystemExit("duplicate tags in the CSV")
    return attributes, private


def read_content_items(path: str | None) -> list[dict]:
    if not path:
        return []
    items = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = [c for c in reader.fieldnames or [] if c in OPTION_COLUMNS]
        for row in reader:
            items.append({
                "code": row["code"],
                "scheme": row["scheme"],
                "meaning": row["meaning"],
                "value_type": row["value_type"],
                "retired": row["retired"] == "1",
                "basic": _action(row["basic_profile"], row["code"]),
                "options": {c: _action(row[c], row["code"]) for c in columns if row[c].strip()},
            })
    return items


def read_safe_private(path: str | None) -> list[dict]:
    if not path:
        return []
    entries = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            entries.append({
                "creator": row["creator"].strip(),
                "group": row["group"].strip().upper(),
                # the low byte only: the block (high byte) is assigned per dataset
                "element": row["element"].strip().upper()[-2:],
                "action": _action(row.get("action", "K") or "K", row["creator"]),
            })
    return entries


def build(csv_path: str, content_items: str | None, notice: str, safe_private: str | None) -> dict:
    attributes, private = read_attributes(csv_path)
    with open(notice, encoding="utf-8") as fh:
        notice_text = fh.read()
    return {
        "source": {
            "standard": "DICOM PS3.15 Annex E",
            "edition": "2026d",
            "tables": ["E.1-1", "E.3.4-1"] + (["E.3.10-1"] if safe_private else []),
            "generated_by": "slicebox/dicom/data/build_profiles.py",
            "notice": "ps315_annex_e.NOTICE",
            "notice_first_line": notice_text.splitlines()[0] if notice_text else "",
        },
        "option_columns": list(OPTION_COLUMNS),
        "attributes": attributes,
        "private": private,
        "safe_private": read_safe_private(safe_private),
        "content_items": read_content_items(content_items),
    }


def main(argv: list[str] | None = None) -> int:
    default_shared = os.path.join(HERE, "source")  # the standard's extract, kept in the repo
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=os.path.join(default_shared, "ps315_annex_e.csv"))
    parser.add_argument("--content-items",
                        default=os.path.join(default_shared, "ps315_annex_e_content_items.csv"))
    parser.add_argument("--notice", default=os.path.join(default_shared, "ps315_annex_e.NOTICE"))
    parser.add_argument("--safe-private", default=None,
                        help="CSV of Table E.3.10-1 (creator, group, element[, action])")
    parser.add_argument("--out", default=OUT_JSON)
    args = parser.parse_args(argv)
    data = build(args.csv, args.content_items, args.notice, args.safe_private)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=False, ensure_ascii=False)
        fh.write("\n")
    notice_out = os.path.join(os.path.dirname(os.path.abspath(args.out)), "ps315_annex_e.NOTICE")
    if os.path.abspath(args.notice) != notice_out:
        shutil.copyfile(args.notice, notice_out)
    print(f"wrote {args.out}: {len(data['attributes'])} attributes, "
          f"{len(data['content_items'])} content items, {len(data['safe_private'])} safe private",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
