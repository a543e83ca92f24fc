"""The ACS file store: firmware images and configuration files, served at ``/files/<name>``.

This module is the one import path for both halves: the store's verbs are
:mod:`daemons.acs.filestore`, the HTTP serving :mod:`daemons.acs.fileserve`.

The catalogue is the ``cpe_files`` table; the content is on disk under ``root``, one file
per distinct content, named by its SHA-256 (``root/<sha256>``). A name therefore always
points at complete content that matches its row: an upload is written to a temporary file
in ``root``, fsynced, renamed onto its blob and only then recorded; a blob no name refers
to any more is removed. Mutations serialise on a PostgreSQL advisory lock, so several
processes (the ACS, the API) may share one root; readers take no lock (a file being
replaced or deleted stays readable through the handle already open).

``serve`` answers GET and HEAD ``/files/<name>``: ETag (the quoted SHA-256), If-None-Match,
If-Modified-Since, If-Match, If-Range, one byte range (``a-b``, ``a-``, ``-n``), the content
streamed from disk in worker threads, CPE authentication left to the caller.
"""

from __future__ import annotations

from daemons.acs.fileserve import (
    Headers,
    RangeNotSatisfiable,
    Receive,
    Scope,
    Send,
    header,
    parse_range,
    serve,
)
from daemons.acs.filestore import (
    CHUNK,
    CONFIG,
    FILE_TYPE,
    FIRMWARE,
    SAFE_NAME,
    WEB_CONTENT,
    Data,
    FileError,
    FileInfo,
    FileStore,
    valid_name,
)

__all__ = [
    "CHUNK",
    "CONFIG",
    "FILE_TYPE",
    "FIRMWARE",
    "SAFE_NAME",
    "WEB_CONTENT",
    "Data",
    "FileError",
    "FileInfo",
    "FileStore",
    "Headers",
    "RangeNotSatisfiable",
    "Receive",
    "Scope",
    "Send",
    "header",
    "parse_range",
    "serve",
    "valid_name",
]
