"""Meta Data: browse and query patients, studies, series, images; series tags and types."""
from flask import Blueprint, jsonify, request

from slicebox.api import bodies
from slicebox.api._helpers import bool_arg, json_body, page_args, required_int_arg
from slicebox.context import get_services
from slicebox.services import metadata as service

bp = Blueprint("metadata", __name__, url_prefix="/api")


def _filters():
    """The series filters of the query string (sources, seriestypes, seriestags)."""
    return bodies.series_filters(request.args.get("sources"), request.args.get("seriestypes"),
                                 request.args.get("seriestags"))


def _listing() -> dict:
    """Order, free-text filter and series filters of a list request."""
    return {
        "order_by": request.args.get("orderby") or None,
        "ascending": bool_arg("orderascending", True),
        "text": request.args.get("filter") or None,
        "filters": _filters(),
    }


def _json(items):
    return jsonify([item.to_json() for item in items])


# -- lists ------------------------------------------------------------------------------

@bp.get("/metadata/patients")
def list_patients():
    """A page of patients, ordered, filtered by text and series filters."""
    return _json(service.list_patients(get_services(), page_args(), **_listing()))


@bp.get("/metadata/studies")
def list_studies():
    """A page of the studies of a patient."""
    return _json(service.list_studies(get_services(), required_int_arg("patientid"), page_args(),
                                      **_listing()))


@bp.get("/metadata/series")
def list_series():
    """A page of the series of a study."""
    return _json(service.list_series(get_services(), required_int_arg("studyid"), page_args(),
                                     **_listing()))


@bp.get("/metadata/images")
def list_images():
    """A page of the images of a series."""
    return _json(service.list_images(get_services(), required_int_arg("seriesid"), page_args(),
                                     **_listing()))


@bp.get("/metadata/flatseries")
def list_flat_series():
    """A page of series with their study and patient."""
    return _json(service.list_flat_series(get_services(), page_args(), **_listing()))


# -- queries ------------------------------------------------------------------------------

@bp.post("/metadata/patients/query")
def query_patients():
    """Patients matching query properties and filters."""
    return _json(service.query(get_services(), "patients", bodies.query(json_body(dict))))


@bp.post("/metadata/studies/query")
def query_studies():
    """Studies matching query properties (of studies or their patients) and filters."""
    return _json(service.query(get_services(), "studies", bodies.query(json_body(dict))))


@bp.post("/metadata/series/query")
def query_series():
    """Series matching query properties (of series, studies or patients) and filters."""
    return _json(service.query(get_services(), "series", bodies.query(json_body(dict))))


@bp.post("/metadata/flatseries/query")
def query_flat_series():
    """Flat series matching query properties and filters."""
    return _json(service.query(get_services(), "flatseries", bodies.query(json_body(dict))))


@bp.post("/metadata/images/query")
def query_images():
    """Images matching query properties (of any level) and filters."""
    return _json(service.query(get_services(), "images", bodies.query(json_body(dict))))


# -- single items -------------------------------------------------------------------------

@bp.get("/metadata/patients/<int:patient_id>")
def get_patient(patient_id: int):
    """One patient."""
    return jsonify(service.get_patient(get_services(), patient_id).to_json())


@bp.get("/metadata/studies/<int:study_id>")
def get_study(study_id: int):
    """One study."""
    return jsonify(service.get_study(get_services(), study_id).to_json())


@bp.get("/metadata/series/<int:series_id>")
def get_series(series_id: int):
    """One series."""
    return jsonify(service.get_series(get_services(), series_id).to_json())


@bp.get("/metadata/images/<int:image_id>")
def get_image(image_id: int):
    """One image."""
    return jsonify(service.get_image(get_services(), image_id).to_json())


@bp.get("/metadata/flatseries/<int:series_id>")
def get_flat_series(series_id: int):
    """One series with its study and patient."""
    return jsonify(service.get_flat_series(get_services(), series_id).to_json())


@bp.get("/metadata/patients/<int:patient_id>/images")
def images_of_patient(patient_id: int):
    """All images of a patient, with the series filters."""
    return _json(service.images_of_patient(get_services(), patient_id, _filters()))


@bp.get("/metadata/studies/<int:study_id>/images")
def images_of_study(study_id: int):
    """All images of a study, with the series filters."""
    return _json(service.images_of_study(get_services(), study_id, _filters()))


@bp.get("/metadata/series/<int:series_id>/source")
def get_series_source(series_id: int):
    """The source a series came from."""
    return jsonify(service.get_series_source(get_services(), series_id).to_json())


# -- series tags ----------------------------------------------------------------------------

@bp.get("/metadata/seriestags")
def list_series_tags():
    """Every series tag in use."""
    return _json(service.list_series_tags(get_services()))


@bp.get("/metadata/series/<int:series_id>/seriestags")
def get_series_tags(series_id: int):
    """The tags of a series."""
    return _json(service.series_tags_of_series(get_services(), series_id))


@bp.post("/metadata/series/<int:series_id>/seriestags")
def add_series_tag(series_id: int):
    """Tag a series by name (the tag is created when new)."""
    tag = service.add_series_tag(get_services(), series_id, bodies.series_tag_name(json_body(dict)))
    return jsonify(tag.to_json()), 201


@bp.delete("/metadata/series/<int:series_id>/seriestags/<int:series_tag_id>")
def remove_series_tag(series_id: int, series_tag_id: int):
    """Remove a tag from a series."""
    service.remove_series_tag(get_services(), series_id, series_tag_id)
    return "", 204


# -- series types on series -------------------------------------------------------------------

@bp.get("/metadata/series/<int:series_id>/seriestypes")
def get_series_types(series_id: int):
    """The series types of a series."""
    return _json(service.series_types_of_series(get_services(), series_id))


@bp.delete("/metadata/series/<int:series_id>/seriestypes")
def remove_series_types(series_id: int):
    """Remove every series type from a series."""
    service.remove_series_types(get_services(), series_id)
    return "", 204


@bp.put("/metadata/series/<int:series_id>/seriestypes/<int:series_type_id>")
def add_series_type(series_id: int, series_type_id: int):
    """Assign a series type to a series."""
    service.add_series_type(get_services(), series_id, series_type_id)
    return "", 204


@bp.delete("/metadata/series/<int:series_id>/seriestypes/<int:series_type_id>")
def remove_series_type(series_id: int, series_type_id: int):
    """Remove a series type from a series."""
    service.remove_series_type(get_services(), series_id, series_type_id)
    return "", 204


@bp.post("/seriestypes/series/query")
def series_types_of_series():
    """The series types of each of the given series ids."""
    pairs = service.series_types_of_many_series(get_services(), bodies.series_ids(json_body(dict)))
    return jsonify({"seriesidseriestypes": [{"seriesid": sid, "seriestype": t.to_json()}
                                            for sid, t in pairs]})
