"""Images: upload, download, delete, attributes, rendering, JPEG wrapping, export sets."""
from flask import Blueprint, Response, g, jsonify, request

from slicebox.api import bodies
from slicebox.api._helpers import id_list_body, int_arg, json_body, required_int_arg, stream_file, stream_temp_file
from slicebox.context import get_services
from slicebox.errors import BadRequest
from slicebox.services import image_anonymization
from slicebox.services import exports as exports_service
from slicebox.services import images as service
from slicebox.services import modify as modify_service
from slicebox.services import rendering

bp = Blueprint("images", __name__, url_prefix="/api/images")



def _upload_stream():
    """The dataset of an upload: multipart field ``file`` (or ``dataset``), else the raw body."""
    content_type = request.mimetype or ""
    if content_type.startswith("multipart/form-data"):
        for field in ("file", "dataset"):
            if field in request.files:
                return request.files[field].stream
        raise BadRequest("multipart upload has no 'file' field")
    return request.stream


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


@bp.get("/<int:image_id>/attributes")
def get_attributes(image_id: int):
    """Every DICOM attribute of the image, nested sequences included."""
    return jsonify(rendering.list_attributes(get_services(), image_id))


@bp.get("/<int:image_id>/imageinformation")
def get_image_information(image_id: int):
    """Number of frames, frame index and pixel value range of the image."""
    return jsonify(rendering.image_information(get_services(), image_id))


@bp.get("/<int:image_id>/png")
def get_png(image_id: int):
    """One frame of the image as a windowed PNG."""
    data = rendering.render_png(
        get_services(), image_id,
        frame_number=int_arg("framenumber", 1, minimum=1),
        window_min=int_arg("windowmin", 0, minimum=None),
        window_max=int_arg("windowmax", 0, minimum=None),
        image_height=int_arg("imageheight", 0, minimum=0),
    )
    return Response(data, mimetype="image/png")


@bp.post("/jpeg")
def add_jpeg():
    """Wrap a JPEG as a Secondary Capture image in a new series of a study."""
    study_id = required_int_arg("studyid")
    description = request.args.get("description", "")
    result = service.add_jpeg(get_services(), _upload_stream(), study_id, description, g.user)
    return jsonify(result.image.to_json()), 201


@bp.post("/export")
def create_export_set():
    """Create an export set of images: 200 with its id, 201 when no image was found."""
    export_id = exports_service.create_export_set(get_services(), id_list_body())
    if export_id is None:
        return "", 201
    return jsonify({"value": export_id})


@bp.get("/export")
def download_export_set():
    """Download an export set as a zip archive (streamed)."""
    services = get_services()
    entries = exports_service.export_entries(services, required_int_arg("id"))
    response = Response(exports_service.stream_zip(services, entries), mimetype="application/zip")
    response.headers["Content-Disposition"] = f"attachment; filename={exports_service.ZIP_NAME}"
    return response


@bp.post("/<int:image_id>/anonymized")
def anonymized_copy(image_id: int):
    """An anonymized copy of the image's dataset (the key is recorded; nothing else is stored)."""
    copy = image_anonymization.download_anonymized(get_services(), image_id,
                                                     *bodies.anonymization_data(json_body(dict)))
    if copy.data is not None:
        return Response(copy.data, mimetype="application/octet-stream")
    return stream_temp_file(copy.path)


@bp.put("/<int:image_id>/modify")
def modify_image(image_id: int):
    """Set or insert attributes (tag path -> value); the result is a new image (201)."""
    result = modify_service.modify_image(get_services(), image_id, bodies.tag_mappings(json_body()), g.user)
    return jsonify(result.image.to_json()), 201


@bp.put("/<int:image_id>/anonymize")
def anonymize_image(image_id: int):
    """Replace the image by its anonymized version; returns the new image."""
    image = image_anonymization.anonymize_image(get_services(), image_id,
                                                 *bodies.anonymization_data(json_body(dict)), g.user)
    return jsonify(image.to_json()), 200
