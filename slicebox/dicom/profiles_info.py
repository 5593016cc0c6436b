"""Names of the confidentiality options (DICOM PS3.15 Annex E) as boxes exchange them.

The full profile tables live in ``dicom.profiles``; this small module only
knows option names and their JSON form, so transaction bookkeeping does not
have to load the tables.
"""
from __future__ import annotations

BASIC_PROFILE = "BASIC_PROFILE"


def _load():
    try:
        from slicebox.dicom import profiles  # the full table, when present
    except ImportError:
        return None
    return profiles


def option_json(name: str) -> dict:
    profiles = _load()
    if profiles is not None and hasattr(profiles, "option_by_name"):
        option = profiles.option_by_name(name)
        if option is not None:
            return option.to_json()
    return {"name": name}


def parse_profile(value) -> tuple[str, ...]:
    """Option names from an anonymizationProfile JSON (objects or plain names).

    BASIC_PROFILE is always included: nothing leaves a box less than basically
    de-identified.
    """
    names: list[str] = [BASIC_PROFILE]
    if value is None:
        return tuple(names)
    if not isinstance(value, dict) or not isinstance(value.get("options", []), list):
        raise ValueError("profile must be an object with an 'options' array")
    for option in value.get("options", []):
        name = option.get("name") if isinstance(option, dict) else option
        if not isinstance(name, str) or not name:
            raise ValueError("each profile option needs a name")
        name = name.upper()
        known = known_options()
        if known and name not in known:
            raise ValueError(f"unknown anonymization option {name}")
        if name not in names:
            names.append(name)
    return tuple(names)


def known_options() -> set[str]:
    profiles = _load()
    if profiles is not None and hasattr(profiles, "OPTION_NAMES"):
        return set(profiles.OPTION_NAMES)
    return set()
