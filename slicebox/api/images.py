"""Images: upload, download, delete, and (in later sections) render, modify, export."""
from flask import Blueprint, Response, g, jsonify, request

from slicebox.api._helpers import id_list_body
from slicebox.context import get_services
from slicebox.errors import BadRequest
from slicebox.services import images as service

bp = Blueprint("images", __name__, url_prefix="/api/images")

_STREAM_CHUNK = 1 << 20


def _upload_stream():
    """The dataset of an upload: multipart field ``file`` (or ``dataset``), else the raw body."""
    content_type = request.mimetype or ""
    if content_type.startswith("multipart/form-data"):
        for field in ("file", "dataset"):
            if field in request.files:
                return request.files[field].stream
        raise BadRequest("multipart upload has no 'file' field")
    return request.stream


def stream_file(fh, size: int, mimetype: str = "application/octet-stream") -> Response:
    def generate():
        with fh:
            while True:
                chunk = fh.read(_STREAM_CHUNK)
                if not chunk:
                    break
                yield chunk

    response = Response(generate(), mimetype=mimetype)
    response.headers["Content-Length"] = str(size)
    return response


@bp.post("")
def add_image():
    """Store a DICOM dataset: 201 when new, 200 when already stored."""
    result = service.add_image(get_services(), _upload_stream(), g.user)
    return jsonify(result.image.to_json()), 201 if result.created else 200


@bp.get("/<int:image_id>")
def get_dataset(image_id: int):
    """The stored DICOM bytes of an image."""
    fh, size = service.open_dataset(get_services(), image_id)
    return stream_file(fh, size)


@bp.delete("/<int:image_id>")
def delete_image(image_id: int):
    """Delete an image (and series/study/patient rows left empty)."""
    service.delete_images(get_services(), [image_id])
    return "", 204


@bp.post("/delete")
def delete_images():
    """Delete many images; unknown ids are ignored."""
    service.delete_images(get_services(), id_list_body())
    return "", 204
