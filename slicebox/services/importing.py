"""Import sessions: named batches of uploads with counters (``slicebox import`` uses them).

Each upload goes through the one ingest path with the source ``import``
(source id = the session).  The counters move inside the image's own
transaction, with ``UPDATE .. SET n = n + 1`` (atomic under any number of
concurrent uploads to one session); a rejected file moves ``filesRejected``.
"""
from __future__ import annotations

import logging
from typing import BinaryIO

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import Connection, IntegrityError
from slicebox.db import importing as repo
from slicebox.errors import BadRequest, Forbidden, NotFound
from slicebox.models import Image, ImportSession, Page, Source, StoredImage, User
from slicebox.services import ingest
from slicebox.services.users import has_permission

logger = logging.getLogger(__name__)

#: longest session name
MAX_NAME = 180


def add_session(services: Services, name: str, user: User) -> ImportSession:
    """A new session owned by ``user``; the same name by the same user returns the existing one."""
    with services.db.connection() as conn:
        existing = repo.get_session_by_name(conn, name)
    if existing is None:
        try:
            with services.db.transaction() as conn:
                return repo.insert_session(conn, name, user.id, user.user, now_ms())
        except IntegrityError:  # a concurrent create of the same name won
            with services.db.connection() as conn:
                existing = repo.get_session_by_name(conn, name)
    if existing is None or existing.user_id != user.id:
        raise BadRequest(f"an import session named {name!r} already exists for another user")
    return existing


def list_sessions(services: Services, page: Page) -> list[ImportSession]:
    with services.db.connection() as conn:
        return repo.list_sessions(conn, page.start_index, page.count)


def get_session(services: Services, session_id: int) -> ImportSession:
    with services.db.connection() as conn:
        session = repo.get_session(conn, session_id)
    if session is None:
        raise NotFound(f"import session {session_id} not found")
    return session


def _check_owner(session: ImportSession, user: User) -> None:
    if session.user_id != user.id and not has_permission(user.role, "ADMINISTRATOR"):
        raise Forbidden("only the owner of an import session or an administrator may change it")


def delete_session(services: Services, session_id: int, user: User) -> None:
    """Delete a session (its images stay); an unknown id is no error."""
    with services.db.connection() as conn:
        session = repo.get_session(conn, session_id)
        if session is None:
            return
        _check_owner(session, user)
        repo.delete_session(conn, session_id)


def session_images(services: Services, session_id: int) -> list[Image]:
    """The images this session brought in that are still stored."""
    get_session(services, session_id)
    with services.db.connection() as conn:
        return repo.session_images(conn, session_id)


def session_for_upload(services: Services, session_id: int, user: User) -> ImportSession:
    """The session an upload goes to (NotFound, Forbidden), checked before the body is read."""
    session = get_session(services, session_id)
    _check_owner(session, user)
    return session


def add_image(services: Services, session: ImportSession, stream: BinaryIO, filename: str = "") -> StoredImage:
    """Store one uploaded dataset in the session, counting it.

    Raises NotFound (rolling the image back) when the session was deleted
    meanwhile.  A file the box refuses (BadRequest, e.g. not DICOM) counts as
    rejected and is a 400 naming the file.
    """
    source = Source(type="import", name=session.name, id=session.id)

    def count(conn: Connection, result: StoredImage) -> None:
        if not repo.count_stored(conn, session.id, result.image.id, result.created, now_ms()):
            raise NotFound(f"import session {session.id} not found")

    try:
        return ingest.store_stream(services, stream, source, in_transaction=count)
    except BadRequest as exc:
        with services.db.connection() as conn:
            repo.count_rejected(conn, session.id, now_ms())
        label = f"{filename}: " if filename else ""
        logger.info("import session %s rejected %s%s", session.name, label, exc.message)
        raise type(exc)(f"{label}{exc.message}") from None
