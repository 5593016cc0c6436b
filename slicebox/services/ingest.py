"""THE store path.  Every source (upload, SCP, box, directory, import) ends here.

Incoming bytes are spooled (slicebox.storage.tempfiles) to a temporary file
next to the storage, never holding a whole dataset in memory; ``store_file``
then parses it, runs the prepare steps (re-identification), writes the
hierarchy rows and moves the file to its image id inside one transaction, so a
failure leaves neither a row nor a file.

A remote storage (S3, ``stages_before_commit``) is never called while the
transaction holds its locks: the image id is reserved first, the object put
under it, and the transaction then inserts the row with that id; when the
transaction fails, or finds the image already stored, the object is deleted
again.  A crash between the put and the commit leaves an unreferenced object,
never a row without its bytes.
"""
from __future__ import annotations

import logging
from typing import BinaryIO, Callable

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import Connection, IntegrityError
from slicebox.db import forwarding as forwarding_repo
from slicebox.db import metadata as repo
from slicebox.dicom import parsing
from slicebox.errors import Conflict, NotFound
from slicebox.models import DicomIdentity, Source, StoredImage
from slicebox.services import logs, seriestypes
from slicebox.services.filtering import filter_step
from slicebox.services.reidentification import reverse_step
from slicebox.storage import stages_before_commit
from slicebox.storage.tempfiles import discard, new_temp_path, spool

logger = logging.getLogger(__name__)


def _prepare_steps() -> tuple[Callable, ...]:
    """What transforms a spooled dataset before it is indexed, in order.

    Each step takes (services, path, identity, source) and returns (path, identity).
    Re-identification runs before the source's tag filter (DESIGN.md lists them the
    other way round): it needs the anonymous identity a whitelist may drop, and it
    restores real values that a blacklist must still be able to remove.
    """
    return (reverse_step, filter_step)


def _after_store_steps() -> tuple[Callable, ...]:
    """What runs after the transaction committed (a failure there never loses the image)."""
    return (log_new_series, seriestypes.on_stored)


#: Called inside the indexing transaction with the result (a source's own bookkeeping that must
#: commit or roll back with the image: a directory watch's ledger, an import session's counters).
InTransaction = Callable[[Connection, StoredImage], None]


def store_file(services: Services, path: str, source: Source, replaces: int | None = None,
               in_transaction: InTransaction | None = None) -> StoredImage:
    """Index and store the DICOM file at ``path`` (which this call consumes).

    Returns the image and whether it is new.  An image whose SOP Instance UID
    is already stored in the same series is not stored again (created=False).

    Parameters
    ----------
    replaces : int, optional
        Id of a stored image this dataset supersedes (``PUT /images/{id}/modify``).
        In the one transaction that indexes the new image, the old image row
        is deleted (with series/study/patient rows left empty), and the old
        series' source and series tags are attached to the new series (the
        old source wins over ``source``).  The old file is deleted only after
        the commit; any failure rolls everything back, leaving the old image
        and file intact.  The new image always gets a new id.  Prepare steps
        (tag filters, reverse anonymization) are not applied: a modification
        stores exactly what was asked for.
    in_transaction : callable, optional
        ``(conn, result)`` run inside the indexing transaction, new image or
        not; an exception from it rolls the image back and propagates.

    Raises
    ------
    InvalidDicom
        The file is not storable DICOM (also: sequences nested deeper than
        ``MAX_SEQUENCE_DEPTH``, compressed frames claiming more than
        ``MAX_PIXELS``); nothing is written.
    PayloadTooLarge
        Deflated data inflating past ``INFLATE_MAX_SIZE`` / ``INFLATE_MAX_RATIO``.
    NotFound
        ``replaces`` names no stored image (e.g. a concurrent modification
        replaced it first); nothing is written.
    Conflict
        With ``replaces``: the new dataset's identity is that of another
        stored image; nothing is written.
    """
    staged: int | None = None
    try:
        config = services.config
        # A decompression bomb is refused while inflating, before any reader inflates it in memory.
        parsing.check_deflated(path, int(config["INFLATE_MAX_SIZE"]), float(config["INFLATE_MAX_RATIO"]))
        path = _as_part10(services, path)
        ident = parsing.read_identity(path)
        parsing.check_complete(path)
        parsing.check_pixel_claim(path, ident, int(config["MAX_PIXELS"]))
        if replaces is None:
            for step in _prepare_steps():
                path, ident = step(services, path, ident, source)
        staged = _stage(services, path, ident, replaces)
        try:
            result = _index_and_move(services, path, ident, source, replaces, staged, in_transaction)
        except IntegrityError:
            # A concurrent delete removed a parent row between our upserts; once more.
            result = _index_and_move(services, path, ident, source, replaces, staged, in_transaction)
        if staged is not None and not result.created:
            _unstage(services, staged)  # stored meanwhile by someone else: ours is not needed
    except BaseException:
        if staged is not None:
            _unstage(services, staged)
        raise
    finally:
        discard(path)
    if replaces is not None:
        # After the commit: a crash before this line leaves an orphan file, never a lost image.
        services.storage.delete(replaces)
        source = result.source or source
    for step in _after_store_steps():
        try:
            step(services, result, source)
        except Exception:  # noqa: BLE001 - a follow-up must never lose the stored image
            logger.exception("after-store step %s failed for image %s", step, result.image.id)
    return result


def _as_part10(services: Services, path: str) -> str:
    """The path of a proper Part 10 file: data without preamble or file meta is rewritten (and consumed)."""
    fixed = new_temp_path(services.storage)
    try:
        if not parsing.to_part10(path, fixed):
            discard(fixed)
            return path
    except BaseException:
        discard(fixed)
        raise
    discard(path)
    return fixed


def _stage(services: Services, path: str, ident: DicomIdentity, replaces: int | None) -> int | None:
    """Remote storage: reserve an image id and put the bytes under it, before any transaction.

    Returns the reserved id, or None when the storage is local or the image is
    already stored (a re-upload costs one query, not an upload).
    """
    if not stages_before_commit(services.storage):
        return None
    if replaces is None:
        with services.db.connection() as conn:
            if repo.find_image_id(conn, ident) is not None:
                return None
    with services.db.transaction() as conn:
        image_id = repo.reserve_image_id(conn)
    try:
        services.storage.put_file(image_id, path)
    except BaseException:
        # StorageUnavailable: nothing indexed; a failed multipart upload is aborted by boto3,
        # and a PUT that failed late may still have landed: remove it (best effort).
        _unstage(services, image_id)
        raise
    return image_id


def _unstage(services: Services, image_id: int) -> None:
    try:
        services.storage.delete(image_id)
    except Exception:  # noqa: BLE001 - an unreferenced object is harmless; the caller's error matters
        logger.exception("could not remove the unindexed object of reserved image id %s", image_id)


def _index_and_move(services: Services, path: str, ident: DicomIdentity, source: Source,
                    replaces: int | None = None, staged: int | None = None,
                    in_transaction: InTransaction | None = None) -> StoredImage:
    storage = services.storage
    moved_id = None
    try:
        with services.db.transaction() as conn:
            tag_ids: list[int] = []
            if replaces is not None:
                # Delete first: the row lock serializes concurrent replacements of one image.
                old_series_id = repo.delete_image(conn, replaces)
                if old_series_id is None:
                    raise NotFound(f"image {replaces} not found")
                source = repo.get_series_source(conn, old_series_id) or source
                tag_ids = [t.id for t in repo.series_tags_of_series(conn, old_series_id)]
                repo.delete_empty_parents(conn, [old_series_id])
            patient = repo.upsert_patient(conn, ident)
            study = repo.upsert_study(conn, patient.id, ident)
            series, series_created = repo.upsert_series(conn, study.id, ident)
            image, created = repo.insert_image(conn, series.id, ident, image_id=staged)
            if replaces is not None and not created:
                raise Conflict(f"the modified dataset is another stored image (id {image.id}): "
                               f"SOP Instance UID {ident.sop_instance_uid} in that series")
            repo.upsert_series_source(conn, series.id, source)
            if tag_ids:
                repo.attach_series_tags(conn, series.id, tag_ids)
            if created:
                if replaces is None:
                    # Step 6, the part that must not be lost: queue the image for the
                    # source's forwarding rules in the transaction that stores it (a
                    # modification is not an arrival and is not forwarded).
                    forwarding_repo.enqueue(conn, source, image.id, series.id, now_ms())
                if staged is None:
                    # Move the bytes into place before commit: if the move fails the
                    # rows roll back; if the commit fails we remove the file below.
                    # (Remote storage got them before the transaction, see _stage.)
                    storage.put_file(image.id, path)
                    moved_id = image.id
            result = StoredImage(image=image, created=created, patient=patient, study=study, series=series,
                                 identity=ident, source=source, series_created=series_created and created)
            if in_transaction is not None:
                in_transaction(conn, result)
        return result
    except BaseException:
        if moved_id is not None:
            storage.delete(moved_id)
        raise


def store_stream(services: Services, stream: BinaryIO, source: Source,
                 in_transaction: InTransaction | None = None) -> StoredImage:
    """Spool ``stream`` to disk, then :func:`store_file` it."""
    return store_file(services, spool(services.storage, stream), source, in_transaction=in_transaction)


def log_new_series(services: Services, result: StoredImage, source: Source) -> None:
    """One log line per new series, not per image: the log stays readable.

    The series upsert said whether it inserted the row, so exactly one of any
    number of concurrent first images of a series logs it, with no query here.
    """
    if result.series_created and result.series is not None:
        logs.add(services, "DEFAULT", "Storage",
                 f"new series {result.series.series_instance_uid} from {source.type} {source.name}")

