"""Users, roles, passwords and login sessions.

Passwords are stored as salted scrypt hashes (werkzeug.security); the hash
never appears in a response.  Basic auth verifies the hash once and then
remembers the (hash, password digest) pair in memory, so a client sending
credentials on every request does not pay a key derivation each time.
"""
from __future__ import annotations

import hashlib
import logging
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from slicebox.clock import now_ms
from slicebox.context import LoginFailures, Services
from slicebox.db import IntegrityError
from slicebox.db import users as repo
from slicebox.errors import BadRequest, NotFound, TooManyRequests
from slicebox.models import ROLES, Page, User

logger = logging.getLogger(__name__)

_RANK = {"SUPERUSER": 3, "ADMINISTRATOR": 2, "USER": 1}
_TOUCH_INTERVAL_MS = 30_000  # refresh a session's timestamp at most this often
_VERIFIED_MAX = 4096
SUPERUSER_LOCK = "superuser"


def has_permission(role: str, required: str) -> bool:
    return _RANK.get(role, 0) >= _RANK[required]


def _agent_digest(agent: str) -> str:
    return hashlib.sha256(agent.encode("utf-8", "replace")).hexdigest()


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def _check(services: Services, stored_hash: str, password: str) -> bool:
    key = (stored_hash, hashlib.sha256(password.encode("utf-8", "replace")).digest())
    verified = services.state.verified_passwords
    if key in verified:
        return True
    if not check_password_hash(stored_hash, password):
        return False
    with services.lock:
        if len(verified) >= _VERIFIED_MAX:
            verified.clear()
        verified.add(key)
    return True


def _verify(services: Services, row: dict | None, password: str) -> bool:
    """Check a password against a user row; an unknown user costs the same hashing time,
    so response times do not tell which user names exist."""
    if row is None:
        dummy = services.state.dummy_password_hash
        if dummy is None:
            dummy = services.state.dummy_password_hash = hash_password(secrets.token_hex(16))
        check_password_hash(dummy, password)
        return False
    return _check(services, row["password_hash"], password)


def ensure_superuser(services: Services) -> None:
    """Make the configured superuser exist with the configured password.

    A changed name or password in the configuration replaces the superuser, as
    in Slicebox 2.0, so an operator can always regain access from the config.
    """
    name = services.config["SUPERUSER"]
    password = services.config["SUPERUSER_PASSWORD"]
    with services.db.transaction() as conn:
        services.db.transaction_lock(conn, SUPERUSER_LOCK)
        supers = repo.superusers(conn)
        if len(supers) == 1 and supers[0]["username"] == name and check_password_hash(
                supers[0]["password_hash"], password):
            return
        for row in supers:
            repo.delete_user(conn, row["id"])
        existing = repo.get_user_by_name(conn, name)
        if existing is not None:
            repo.update_user(conn, existing.id, "SUPERUSER", hash_password(password))
        else:
            repo.insert_user(conn, name, "SUPERUSER", hash_password(password))
    logger.info("superuser %r set from configuration", name)


# -- login throttle -------------------------------------------------------------------
#: failures are forgotten this long after the last one
_FORGET_MS = 15 * 60 * 1000
#: most names and addresses remembered (oldest forgotten first past this)
_FAILURES_MAX = 10_000


def _throttle_keys(username: str, ip: str) -> tuple[str, str]:
    return "user:" + username, "ip:" + ip


def _check_throttle(services: Services, username: str, ip: str, is_superuser: bool) -> None:
    """Refuse (429) to check a password while its user name or client address waits after failures.

    The wait is bounded (LOGIN_MAX_DELAY) and attempts during it are not
    counted, so nobody is locked out for good; the superuser is held back by
    its user name only from addresses that themselves failed recently, so an
    attacker guessing its password cannot keep it out from a clean address.
    """
    if int(services.config["LOGIN_FREE_ATTEMPTS"]) <= 0:
        return
    failures = services.state.login_failures
    if not failures:
        return
    now = now_ms()
    user_key, ip_key = _throttle_keys(username, ip)
    by_ip = failures.get(ip_key)
    entries = [by_ip]
    if not is_superuser or (by_ip is not None and now - by_ip.last_ms <= _FORGET_MS):
        entries.append(failures.get(user_key))
    wait_ms = max((e.blocked_until_ms - now for e in entries if e is not None), default=0)
    if wait_ms > 0:
        raise TooManyRequests("too many failed logins; try again later", retry_after=-(-wait_ms // 1000))


def _record_failure(services: Services, username: str, ip: str) -> None:
    free = int(services.config["LOGIN_FREE_ATTEMPTS"])
    if free <= 0:
        return
    max_delay_ms = int(float(services.config["LOGIN_MAX_DELAY"]) * 1000)
    now = now_ms()
    with services.lock:
        failures = services.state.login_failures
        if len(failures) >= _FAILURES_MAX:
            _forget_old(failures, now)
        for key in _throttle_keys(username, ip):
            entry = failures.get(key)
            if entry is None or now - entry.last_ms > _FORGET_MS:
                entry = failures[key] = LoginFailures()
            entry.count += 1
            entry.last_ms = now
            if entry.count >= free:
                delay_ms = min(max_delay_ms, 1000 << min(entry.count - free, 20))
                entry.blocked_until_ms = now + delay_ms


def _forget_old(failures: dict[str, LoginFailures], now: int) -> None:
    for key in [k for k, e in failures.items() if now - e.last_ms > _FORGET_MS]:
        del failures[key]
    if len(failures) >= _FAILURES_MAX:  # still full: keep the most recent half
        for key in sorted(failures, key=lambda k: failures[k].last_ms)[:len(failures) // 2]:
            del failures[key]


def _record_success(services: Services, username: str) -> None:
    """A right password clears its user name's failures (not its address's: one valid
    account must not buy an attacker fresh guesses at the others)."""
    failures = services.state.login_failures
    if failures:
        with services.lock:
            failures.pop(_throttle_keys(username, "")[0], None)


def _checked_user(services: Services, username: str, password: str, ip: str) -> dict | None:
    """The user row when ``password`` is right, else None; throttled (TooManyRequests)."""
    with services.db.connection() as conn:
        row = repo.get_user_with_hash(conn, username)
    _check_throttle(services, username, ip, row is not None and row["role"] == "SUPERUSER")
    if not _verify(services, row, password):
        _record_failure(services, username, ip)
        return None
    _record_success(services, username)
    return row


def authenticate_basic(services: Services, username: str, password: str, ip: str = "") -> User | None:
    """The user of these credentials, None when they are wrong; TooManyRequests while throttled."""
    row = _checked_user(services, username, password, ip)
    if row is None:
        return None
    return User(id=row["id"], user=row["username"], role=row["role"])


def login(services: Services, username: str, password: str, ip: str, agent: str) -> str | None:
    """Return a session token for valid credentials (reusing this client's session), else None."""
    if not agent:
        raise BadRequest("a User-Agent header is required to log in with a session")
    row = _checked_user(services, username, password, ip)
    if row is None:
        return None
    digest = _agent_digest(agent)
    now = now_ms()
    timeout_ms = int(services.config["SESSION_TIMEOUT"]) * 1000
    with services.db.transaction() as conn:
        existing = repo.find_session(conn, row["id"], ip, digest)
        if existing is not None and now - existing["updated"] <= timeout_ms:
            repo.touch_session(conn, existing["id"], now)
            return existing["token"]
        if existing is not None:
            repo.delete_session(conn, existing["id"])
        token = secrets.token_urlsafe(32)
        repo.insert_session(conn, row["id"], token, ip, digest, now)
    return token


def authenticate_session(services: Services, token: str, ip: str, agent: str) -> User | None:
    """The user of a live session bound to this client; refreshes the sliding timeout."""
    if not token or not agent:
        return None
    now = now_ms()
    timeout_ms = int(services.config["SESSION_TIMEOUT"]) * 1000
    with services.db.connection() as conn:
        row = repo.session_user(conn, token, ip, _agent_digest(agent))
        if row is None:
            return None
        if now - row["updated"] > timeout_ms:
            repo.delete_session(conn, row["session_id"])
            return None
        # Refreshing on every request would write per request; refresh once the
        # session has aged a little (never later than a tenth of the timeout).
        if now - row["updated"] > min(_TOUCH_INTERVAL_MS, timeout_ms // 10):
            repo.touch_session(conn, row["session_id"], now)
    return User(id=row["id"], user=row["username"], role=row["role"])


def logout(services: Services, token: str | None, user_id: int) -> None:
    """End the session of this cookie, if it belongs to the user logging out."""
    if token:
        with services.db.connection() as conn:
            repo.delete_session_of(conn, token, user_id)


def purge_expired_sessions(services: Services) -> int:
    cutoff = now_ms() - int(services.config["SESSION_TIMEOUT"]) * 1000
    with services.db.connection() as conn:
        return repo.purge_sessions(conn, cutoff)


def list_users(services: Services, page: Page) -> list[User]:
    with services.db.connection() as conn:
        return repo.list_users(conn, page.start_index, page.count)


def add_user(services: Services, username: str, role: str, password: str) -> tuple[User, bool]:
    """Create a user; an existing name returns the existing user (spec: duplicates not added)."""
    username = (username or "").strip()
    if not username:
        raise BadRequest("user name must not be empty")
    if len(username) > 180:
        raise BadRequest("user name must be at most 180 characters")
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    if role == "SUPERUSER":
        raise BadRequest("superusers cannot be added through the API")
    if not password:
        raise BadRequest("password must not be empty")
    with services.db.connection() as conn:
        existing = repo.get_user_by_name(conn, username)
    if existing is not None:
        return existing, False
    password_hash = hash_password(password)
    try:
        with services.db.transaction() as conn:
            return repo.insert_user(conn, username, role, password_hash), True
    except IntegrityError:
        with services.db.connection() as conn:
            return repo.get_user_by_name(conn, username), False


def delete_user(services: Services, user_id: int) -> None:
    with services.db.transaction() as conn:
        user = repo.get_user(conn, user_id)
        if user is None:
            return
        if user.role == "SUPERUSER":
            raise BadRequest("the superuser cannot be deleted")
        repo.delete_user(conn, user_id)


def get_user(services: Services, user_id: int) -> User:
    with services.db.connection() as conn:
        user = repo.get_user(conn, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user
