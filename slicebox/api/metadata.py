"""Meta Data: browse and query patients, studies, series, images; series tags and types."""
from flask import Blueprint

bp = Blueprint("metadata", __name__, url_prefix="/api")
