"""The last line of defence for secrets: whatever the toolkit prints or logs passes through `scrub`.

The Kaggle edge registers each credential it reads (the token, the key, the Basic header made of
them); signed storage URLs and upload ids are recognised by their query parameters. The CLI scrubs
every error line, and `install` puts a filter on each logging handler (console and run logs), so
third-party lines (urllib3's retry warnings print upload URLs) are scrubbed too.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
# Query parameters that grant access on their own: signed URLs (Cloud Storage V4 and older ones),
# resumable-upload session ids, and anything named like a token or key.
_SIGNED_PARAMETER = re.compile(
    r"(?i)([?&;](?:upload_id|x-goog-signature|x-goog-credential|signature|googleaccessid|access_token|token|key|sig)=)[^&\s'\"<>]+"
)


def register(*values: str | None) -> None:
    """Remember secret values (short ones are ignored: masking 'a' everywhere would garble text)."""
    with _lock:
        _secrets.update(value for value in values if value and len(value) >= 6)


def scrub(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: a key inside a header value
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return _SIGNED_PARAMETER.sub(lambda match: match.group(1) + MASK, text)


class ScrubFilter(logging.Filter):
    """Rewrites each record's final message; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install(handler: logging.Handler) -> logging.Handler:
    if not any(isinstance(existing, ScrubFilter) for existing in handler.filters):
        handler.addFilter(ScrubFilter())
    return handler
