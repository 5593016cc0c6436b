"""JSON shapes of the models whose spec shape needs DICOM knowledge.

Boxes and outgoing transactions carry their anonymization profile as option
names, answered as confidentialityOption objects; key values carry tag path
text, answered as tagPath objects.  The other models shape themselves
(``to_json`` in slicebox/models.py).
"""
from __future__ import annotations

from slicebox.dicom.profiles import profile_json
from slicebox.dicom.tagpath import tag_path_to_json
from slicebox.models import AnonymizationKeyValue, Box, OutgoingTransaction


def box_json(box: Box, with_secrets: bool = True) -> dict:
    """A box as JSON; without ``with_secrets`` (answers to a USER) the token is empty and the
    base URL stops before it, since whoever holds the token can act as this box's peer."""
    profile = profile_json(box.profile)
    token, base_url = box.token, box.base_url
    if not with_secrets:
        if token and base_url:
            base_url = base_url.replace(token, "")
        token = ""
    return {
        "id": box.id,
        "name": box.name,
        "token": token,
        "baseUrl": base_url,
        "sendMethod": box.send_method,
        "profile": profile,
        # Slicebox 2.0 peers and UIs read "defaultProfile"
        "defaultProfile": profile,
        "online": box.online,
    }


def outgoing_transaction_json(tx: OutgoingTransaction) -> dict:
    return {
        "id": tx.id,
        "boxId": tx.box_id,
        "boxName": tx.box_name,
        "profile": profile_json(tx.profile),
        "sentImageCount": tx.sent_image_count,
        "totalImageCount": tx.total_image_count,
        "created": tx.created,
        "updated": tx.updated,
        "status": tx.status,
    }


def key_value_json(kv: AnonymizationKeyValue) -> dict:
    return {
        "id": kv.id,
        "anonymizationKeyId": kv.anonymization_key_id,
        "tagPath": tag_path_to_json(kv.tag_path),
        "value": kv.value,
        "anonymizedValue": kv.anonymized_value,
    }
