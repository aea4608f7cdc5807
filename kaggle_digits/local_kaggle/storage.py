"""The storage host, as kaggle.com's Google Cloud Storage behaves towards the official client.

It runs on another host name than the API (127.0.0.1 against the API's localhost), so a client
that leaks its Kaggle credentials there is caught: any request carrying an Authorization header is
refused with 401 and recorded in `State.storage_auth_seen`. Downloads are signed URLs that expire
(403 afterwards, as Cloud Storage answers); uploads are resumable-upload URLs that take one PUT of
the whole file (200) or answer a status query (`Content-Range: bytes */N`) with 308 until complete.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse

from .kernels import OUTPUT_BUCKET
from .plumbing import BaseHandler, State, Upload

DATA_BUCKET = "kaggle-competitions-data"
UPLOAD_PATH = "/upload/storage/v1/b/kaggle-competitions-submissions/o"
_STAMP = "%Y%m%dT%H%M%SZ"


def _signature(state: State, path: str, stamp: str, expires: str) -> str:
    return hmac.new(state.signing_key, f"GET\n{path}\n{stamp}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_download_url(state: State, competition: str, file_name: str, bucket: str = DATA_BUCKET) -> str:
    """A V4-style signed URL for one object, valid for `state.url_ttl` seconds."""
    path = f"/{bucket}/{quote(competition)}/{quote(file_name)}"
    stamp = datetime.now(timezone.utc).strftime(_STAMP)
    expires = str(state.url_ttl)
    query = urlencode(
        {
            "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
            "X-Goog-Credential": "kaggle-data-sets@local.iam.gserviceaccount.com/auto/storage/goog4_request",
            "X-Goog-Date": stamp,
            "X-Goog-Expires": expires,
            "X-Goog-SignedHeaders": "host",
            "X-Goog-Signature": _signature(state, path, stamp, expires),
        }
    )
    return f"{state.storage_base}{path}?{query}"


def resumable_upload_url(state: State, upload: Upload) -> str:
    return f"{state.storage_base}{UPLOAD_PATH}?{urlencode({'uploadType': 'resumable', 'upload_id': upload.upload_id})}"


def _xml_error(code: str, message: str) -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    )


class StorageHandler(BaseHandler):
    server_version = "UploadServer"

    def _refuse_credentials(self) -> bool:
        """Signed URLs carry their own authority: a bearer or basic header here is a leaked secret."""
        if "Authorization" not in self.headers:
            return False
        with self.state.lock:
            self.state.storage_auth_seen.append(f"{self.command} {urlparse(self.path).path}")
        self.send_body(
            401,
            _xml_error("AuthenticationRequired", "Signed URLs must not carry an Authorization header"),
            "application/xml",
        )
        return True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.state.requests.append("GET download")
        if self._refuse_credentials():
            return
        url = urlparse(self.path)
        path, query = url.path, {key: values[0] for key, values in parse_qs(url.query).items()}
        stamp, expires = query.get("X-Goog-Date", ""), query.get("X-Goog-Expires", "0")
        if not hmac.compare_digest(query.get("X-Goog-Signature", ""), _signature(self.state, path, stamp, expires)):
            self.send_body(403, _xml_error("SignatureDoesNotMatch", "Access denied."), "application/xml")
            return
        signed_at = datetime.strptime(stamp, _STAMP).replace(tzinfo=timezone.utc).timestamp()
        if time.time() > signed_at + int(expires):
            self.send_body(403, _xml_error("ExpiredToken", "Request has expired"), "application/xml")
            return
        if self.apply_fault("download"):  # after the checks: a stall or a cut hits a request that was valid
            return
        _, bucket, folder, file_name = unquote(path).split("/", 3)
        if bucket == OUTPUT_BUCKET:  # a kernel session's output: folder is the session id
            content = self.state.kernels.output_file(int(folder), file_name) if folder.isdigit() else None
        else:
            competition = self.state.competitions.get(folder)
            content = competition.file(file_name) if competition else None
        if content is None:
            self.send_body(404, _xml_error("NoSuchKey", "The specified key does not exist."), "application/xml")
            return
        self._send_object(content, file_name)

    def _send_object(self, content: bytes, file_name: str) -> None:
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        start, status = 0, 200
        range_header = self.headers.get("Range", "")
        if range_header.startswith("bytes=") and self.headers.get("If-Range", etag) == etag:
            start = int(range_header[6:].split("-")[0] or 0)
            if start >= len(content):
                self.send_body(
                    416, _xml_error("InvalidRange", "The requested range cannot be satisfied."), "application/xml"
                )
                return
            status = 206
        body = content[start:]
        self.send_response(status)
        content_type = {".zip": "application/zip", ".csv": "text/csv"}.get(
            Path(file_name).suffix, "application/octet-stream"
        )
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", formatdate(1704067200, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.end_headers()
        if self._cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.drop_connection()
            return
        self.wfile.write(body)

    def do_PUT(self) -> None:  # noqa: N802
        body = self.body()
        if body is None:
            return
        self.state.requests.append("PUT upload")
        if self._refuse_credentials() or self.apply_fault("upload"):
            return
        url = urlparse(self.path)
        upload_id = parse_qs(url.query).get("upload_id", [""])[0]
        upload = next((item for item in self.state.uploads.values() if item.upload_id == upload_id), None)
        if url.path != UPLOAD_PATH or upload is None:
            self.send_body(404, _xml_error("NoSuchUpload", "No such upload session."), "application/xml")
            return
        if self.headers.get("Content-Range", "").startswith("bytes */"):  # "how much do you have?"
            if upload.content is not None:
                self.json(200, {"name": upload.token, "size": str(len(upload.content))})
            else:
                self.send_body(308, b"", "text/plain")
            return
        if len(body) != upload.size:
            self.send_body(
                400,
                _xml_error("InvalidArgument", f"Got {len(body)} bytes, the session was started for {upload.size}"),
                "application/xml",
            )
            return
        upload.content = body
        self.json(200, {"name": upload.token, "size": str(len(body))})
