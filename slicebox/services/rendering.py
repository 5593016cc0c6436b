"""Viewing images: PNG rendering, image information and the attribute list."""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from slicebox.context import Services
from slicebox.dicom import attributes as dicom_attributes
from slicebox.dicom import pixels
from slicebox.dicom.parsing import frame_samples
from slicebox.errors import BadRequest, NotFound, NotImplementedYet, SliceboxError
from slicebox.imaging import png
from slicebox.imaging.jpeg import codestream_dimensions
from slicebox.lru import ByteLRU
from slicebox.services.images import get_image
from slicebox.storage.tempfiles import local_copy

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def open_source(services: Services, image_id: int) -> Iterator[str]:
    """The stored dataset as a local file path (a temporary copy when the storage keeps no files).

    A request racing a delete answers 404: when reading fails in any way and
    the image is gone by then, the failure was the delete, not the data.
    """
    get_image(services, image_id)
    try:
        with local_copy(services.storage, image_id) as path:
            yield path
    except NotFound:
        raise
    except (SliceboxError, OSError):
        try:
            get_image(services, image_id)
        except NotFound:
            raise NotFound(f"image {image_id} not found") from None
        raise


def list_attributes(services: Services, image_id: int) -> list[dict]:
    """Every attribute of the image's dataset (spec ``imageAttribute``)."""
    with open_source(services, image_id) as source:
        return dicom_attributes.list_attributes(source)


def image_information(services: Services, image_id: int) -> dict:
    """Frames, frame index and pixel value range from the header (spec ``imageInformation``)."""
    with open_source(services, image_id) as source:
        return dicom_attributes.read_image_information(source)


def _cache(services: Services) -> ByteLRU:
    cache = services.state.rendered
    if cache is None:
        with services.lock:
            if services.state.rendered is None:
                services.state.rendered = ByteLRU(int(services.config["PNG_CACHE_BYTES"]))
            cache = services.state.rendered
    return cache


def render_png(services: Services, image_id: int, frame_number: int = 1, window_min: int = 0,
               window_max: int = 0, image_height: int = 0) -> bytes:
    """PNG of one frame (1-based), windowed and optionally resized; the same view again comes from a cache.

    The cache key holds the image's SOP Instance UID next to its id, and the
    image is looked up first on every request: a deleted image is a 404, and a
    modified or re-anonymized one has a new id, so a stale rendering is never served.
    """
    image = get_image(services, image_id)
    key = (image_id, image.sop_instance_uid, frame_number, window_min, window_max, image_height)
    cache = _cache(services)
    data = cache.get(key)
    if data is None:
        data = _render_png(services, image_id, frame_number, window_min, window_max, image_height)
        cache.put(key, data)
    return data


def _render_png(services: Services, image_id: int, frame_number: int, window_min: int,
                window_max: int, image_height: int) -> bytes:
    """PNG of one frame (1-based), windowed and optionally resized.

    Raises
    ------
    NotFound
        Unknown image.
    BadRequest
        ``frame_number`` outside 1..NumberOfFrames, or an unusable image height.
    NotImplementedYet
        No pixel data, pixel data no installed decoder can decode, or a frame
        claiming more than ``MAX_PIXELS`` samples (DICOM header or the
        codestream's own header; checked before decoding) (501).
    BadRequest
        Also: ``image_height`` asking for a PNG of more than ``PNG_MAX_PIXELS``.
    """
    if frame_number < 1:
        raise BadRequest("framenumber must be >= 1")
    if image_height < 0 or image_height > png.MAX_IMAGE_HEIGHT:
        raise BadRequest(f"imageheight must be between 0 and {png.MAX_IMAGE_HEIGHT}")
    with open_source(services, image_id) as source:
        header = pixels.read_pixel_header(source, frame_number - 1)
        if not header.has_pixels:
            raise NotImplementedYet(f"image {image_id} has no pixel data to render")
        if frame_number > header.number_of_frames:
            raise BadRequest(f"framenumber {frame_number} is out of range: the image has "
                             f"{header.number_of_frames} frame(s)")
        _check_sizes(services, source, header, frame_number - 1, image_height, image_id)
        try:
            frame = pixels.decode_frame(source, header, frame_number - 1)
        except pixels.PixelDecodeError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                # deleted while it was being read (the folder storage reads the stored file itself)
                raise NotFound(f"image {image_id} not found") from None
            raise NotImplementedYet(f"cannot decode the pixel data of image {image_id}: {exc}") from None
    picture = png.display_pixels(
        frame, photometric=header.photometric, bits_stored=header.bits_stored,
        slope=header.slope, intercept=header.intercept,
        window_min=window_min, window_max=window_max,
        dataset_center=header.window_center, dataset_width=header.window_width)
    return png.encode_png(picture, image_height, services.config["PNG_COMPRESS_LEVEL"])



def _check_sizes(services: Services, source, header: pixels.PixelHeader, frame_index: int,
                 image_height: int, image_id: int) -> None:
    """Refuse, before decoding, a frame larger than MAX_PIXELS or a PNG larger than PNG_MAX_PIXELS."""
    max_pixels = int(services.config["MAX_PIXELS"])
    claimed = frame_samples(header.rows, header.columns, header.samples_per_pixel)
    if claimed > max_pixels:
        raise NotImplementedYet(f"cannot render image {image_id}: its frames of {header.rows} x "
                                f"{header.columns} x {header.samples_per_pixel} samples are larger than "
                                f"this box decodes ({max_pixels})")
    head = pixels.encoded_frame_head(source, header, frame_index)
    dims = codestream_dimensions(head) if head else None
    if dims is not None and frame_samples(*dims) > max_pixels:
        raise NotImplementedYet(f"cannot render image {image_id}: its compressed frame claims {dims[0]} x "
                                f"{dims[1]} x {dims[2]} samples, more than this box decodes ({max_pixels})")
    rows, columns = (dims[0], dims[1]) if dims is not None else (header.rows, header.columns)
    if image_height and rows > 0:
        width = max(1, round(columns * image_height / rows))
        cap = int(services.config["PNG_MAX_PIXELS"])
        if width * image_height > cap:
            raise BadRequest(f"imageheight {image_height} asks for a {width} x {image_height} picture; "
                             f"at most {cap} pixels can be rendered")
