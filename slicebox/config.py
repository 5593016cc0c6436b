"""Configuration: every key in one place, each documented.

Load order (later wins): DEFAULTS -> ``SLICEBOX_*`` environment variables ->
``test_config`` passed to :func:`slicebox.create_app`.  Values read from the
environment are converted to the type of the default.  Nothing else in the
package reads the environment for settings or passes a default at a read site.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

ENV_PREFIX = "SLICEBOX_"


@dataclass(frozen=True)
class Key:
    default: object
    doc: str


#: name -> (default, documentation).  README's configuration table lists these.
DEFAULTS: dict[str, Key] = {
    "HOST": Key("127.0.0.1", "Interface the HTTP server binds to."),
    "PORT": Key(5000, "HTTP port."),
    "DATA_DIR": Key("./data", "Folder for the embedded database, stored images and temporary files."),
    "DATABASE_URL": Key("", "Empty: SQLite file `<DATA_DIR>/slicebox.db`. `sqlite:///path` or "
                            "`postgresql://user@host:port/db` (psycopg 3) select explicitly."),
    "STORAGE_URL": Key("", "Empty: folder `<DATA_DIR>/storage`. `file:///path` for another folder, "
                           "`memory://` for a throw-away in-memory store (tests), `s3://bucket/prefix` "
                           "for an S3-compatible object store (needs the `s3` extra; see the `S3_*` keys)."),
    "SUPERUSER": Key("admin", "Name of the superuser created (or reset) at start."),
    "SUPERUSER_PASSWORD": Key("admin", "Password of the superuser. Change it in production."),
    "NAME": Key("slicebox", "Name of this box, shown to other boxes."),
    "PUBLIC_URL": Key("", "Base URL other boxes use to reach this box, e.g. https://box.example.org. "
                          "Empty: http://HOST:PORT."),
    "WORKERS": Key(0, "gunicorn worker processes for `slicebox serve`; 0: one per CPU, at least 2 "
                      "(README \"Production\" says how to size it)."),
    "THREADS": Key(0, "Threads per gunicorn worker (its database pool holds this many plus 4); 0: 8."),
    "SESSION_TIMEOUT": Key(3600, "Seconds of inactivity after which a login session expires (sliding)."),
    "LOGIN_FREE_ATTEMPTS": Key(5, "Wrong passwords (login or basic auth) one user name or one client address "
                                  "may send before each further attempt must wait (1 s, doubling up to "
                                  "LOGIN_MAX_DELAY; answered 429 with Retry-After). 0 turns the throttle off."),
    "LOGIN_MAX_DELAY": Key(60, "Longest wait in seconds the login throttle imposes; failures are forgotten "
                               "15 minutes after the last one, and at restart."),
    "EXPORT_SET_TTL": Key(12 * 3600, "Seconds an export set (POST /images/export) stays downloadable."),
    "MAX_JSON_BODY": Key(16 * 1024 * 1024, "Largest JSON request body in bytes; DICOM uploads are "
                                           "streamed to disk and not limited by this."),
    "BACKGROUND": Key(True, "Run the long-running services (sweeps, listeners, box workers) in "
                            "the process holding the service lock. Tests turn it off."),
    "SUPERVISOR_INTERVAL": Key(5.0, "Seconds between the supervisor's passes in the service process: it "
                                    "starts, stops and restarts the long-running parts (box transfers, "
                                    "listeners, ...) as the database says."),
    "BOX_POLL_INTERVAL": Key(5.0, "Seconds between box transfer rounds when there is nothing to do "
                                  "(work found is done at once, batch after batch)."),
    "FORWARDING_QUIET": Key(3.0, "Seconds without a new image of a series after which the images a forwarding "
                                 "rule collected for that series leave as one transaction."),
    "FORWARDING_MAX_WAIT": Key(60.0, "Longest wait in seconds before collected images are forwarded even "
                                     "though more of the series keep arriving."),
    "FORWARDING_INTERVAL": Key(1.0, "Seconds between the forwarding worker's looks at its queue."),
    "BOX_PARALLELISM": Key(4, "Images transferred in parallel per box."),
    "BOX_BATCH_SIZE": Key(32, "Images per transfer batch."),
    "BOX_COMPRESSION_LEVEL": Key(1, "zlib level (0-9) of the image bodies sent to other boxes (zlib format, "
                                    "flushed per chunk, as Slicebox 2.0; it uses 9, every level reads the "
                                    "same): 1 suits links slower than ~200 Mbit/s, 0 (stored blocks, still "
                                    "valid zlib) fast local networks."),
    "BOX_MAX_IMAGE_SIZE": Key(4 << 30, "Largest image in bytes, once inflated, accepted from another box "
                                       "(pushed to us or polled by us); a larger one is refused (400) or "
                                       "skipped, and logged."),
    "BOX_MAX_BACKOFF": Key(60.0, "Longest wait in seconds before retrying a box that failed."),
    "SCP_HOST": Key("0.0.0.0", "Interface the DICOM listeners (SCPs) bind to; 0.0.0.0 is every interface "
                               "(PACS systems must reach them), 127.0.0.1 this host only."),
    "SCU_AE_TITLE": Key("SLICEBOX-SCU", "Calling AE title this box uses when it sends to a remote SCP "
                                        "(POST /scus/{id}/send, forwarding)."),
    "DIRECTORY_SETTLE": Key(2.0, "Seconds a watched file's size and modification time must stay unchanged "
                                 "before it is imported (a file still being written is never read half-way)."),
    "DIRECTORY_RESCAN_INTERVAL": Key(60.0, "Seconds between full rescans of each watched directory, the safety "
                                           "net behind inotify (missed events, too many folders to watch)."),
    "DIRECTORY_PARALLELISM": Key(2, "Files imported in parallel per watched directory."),
    "PNG_COMPRESS_LEVEL": Key(1, "zlib level for PNG rendering (1 fast .. 9 small)."),
    "PNG_MAX_PIXELS": Key(16 * 1024 * 1024, "Largest PNG a rendering request may ask for, in pixels (width x "
                                            "height after `imageheight` scaling, whatever the aspect ratio); "
                                            "larger requests are a 400."),
    "MAX_SEQUENCE_DEPTH": Key(64, "Deepest sequence nesting (items inside items) any reader accepts: uploads "
                                  "nested deeper are a 400, stored data nested deeper is refused by every "
                                  "reader with a clear error. 1..128 (pydicom recurses per level)."),
    "MAX_PIXELS": Key(100_000_000, "Largest frame (rows x columns x samples per pixel) the box decodes or "
                                   "accepts compressed: checked from the claimed dimensions (JPEG frame "
                                   "header, DICOM Rows/Columns) before any decoding, at JPEG wrapping (400), "
                                   "at ingest of compressed pixel data (400) and at rendering (501). "
                                   "Rendering costs about 5 bytes per sample."),
    "INFLATE_MAX_SIZE": Key(128 * 1024 * 1024, "Largest inflated size in bytes of a dataset in the deflated "
                                               "transfer syntax (readers inflate those in memory): a bigger "
                                               "upload is a 413, checked while inflating chunk by chunk."),
    "INFLATE_MAX_RATIO": Key(100, "Deflated data (deflated-syntax uploads, box transfer bodies) may inflate "
                                  "to at most this many times its compressed size once past 16 MiB: a "
                                  "decompression bomb is refused (413) as soon as it passes."),
    "TEMP_SWEEP_INTERVAL": Key(60.0, "Seconds between sweeps of the storage's temp folder in the service "
                                     "process (also once at start): files of processes that are gone, and "
                                     "files untouched for TEMP_MAX_AGE, are removed."),
    "TEMP_MAX_AGE": Key(24 * 3600.0, "Seconds after which a temp file untouched since is removed even if its "
                                     "owner process still runs (or it belongs to another host)."),
    "PNG_CACHE_BYTES": Key(64 << 20, "Bytes of rendered PNGs each server process keeps to answer the same "
                                     "view again without decoding (0 turns the cache off)."),
    "LOG_LEVEL": Key("INFO", "Python logging level of the server process."),
    # -- production: object store, proxies (issue 13) --
    "S3_ENDPOINT_URL": Key("", "S3 storage: endpoint of an S3-compatible server (MinIO, Ceph, ...), e.g. "
                               "https://s3.example.org. Empty: boto3's default (`AWS_ENDPOINT_URL`, else AWS)."),
    "S3_REGION": Key("", "S3 storage: region. Empty: `AWS_REGION` / `AWS_DEFAULT_REGION` / `~/.aws/config`."),
    "S3_ACCESS_KEY_ID": Key("", "S3 storage: access key. Empty: boto3's chain (`AWS_ACCESS_KEY_ID`, "
                                "`~/.aws/credentials`, instance role)."),
    "S3_SECRET_ACCESS_KEY": Key("", "S3 storage: secret key, with `SLICEBOX_S3_ACCESS_KEY_ID`."),
    "TRUSTED_PROXIES": Key("", "Comma-separated addresses or networks (e.g. `127.0.0.1,10.0.0.0/8`) of the reverse "
                               "proxies in front of the box. Only a request whose peer is one of them has its "
                               "`X-Forwarded-For/Proto/Host/Port` applied (one hop, Werkzeug ProxyFix), so "
                               "sessions bind to the real client. Empty: the headers are ignored."),
    "GRACEFUL_TIMEOUT": Key(120, "Seconds `slicebox serve` lets running requests (e.g. a 1 GB upload) finish "
                                 "on stop or reload (SIGTERM / SIGHUP) before workers are killed."),
    "ACCESS_LOG": Key(False, "Log every request (one line on stderr with the request id); also "
                             "`slicebox serve --access-log`."),
    "SERVICE_LOCK_RETRY": Key(5.0, "Seconds between a process's attempts to take the service lock: how soon "
                                   "another worker or host takes over the long-running side when its "
                                   "holder dies."),
}


def _convert(raw: str, default: object) -> object:
    if isinstance(default, bool):
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def load_config(test_config: dict | None = None, environ: dict | None = None) -> dict:
    """Return the effective configuration as a plain dict of KEY -> value."""
    environ = os.environ if environ is None else environ
    config = {name: key.default for name, key in DEFAULTS.items()}
    for name, key in DEFAULTS.items():
        raw = environ.get(ENV_PREFIX + name)
        if raw is not None:
            try:
                config[name] = _convert(raw, key.default)
            except ValueError as exc:
                raise SystemExit(f"invalid value for {ENV_PREFIX}{name}: {exc}") from None
    if test_config:
        unknown = set(test_config) - set(DEFAULTS)
        if unknown:
            raise KeyError(f"unknown configuration keys: {sorted(unknown)}")
        config.update(test_config)
    data_dir = os.path.abspath(str(config["DATA_DIR"]))
    config["DATA_DIR"] = data_dir
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = "sqlite:///" + os.path.join(data_dir, "slicebox.db")
    if not config["STORAGE_URL"]:
        config["STORAGE_URL"] = "file://" + os.path.join(data_dir, "storage")
    if not config["PUBLIC_URL"]:
        config["PUBLIC_URL"] = f"http://{config['HOST']}:{config['PORT']}"
    config["PUBLIC_URL"] = str(config["PUBLIC_URL"]).rstrip("/")
    return config
