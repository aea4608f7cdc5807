"""The storage host: signed URLs for downloads and uploads, reached with no Kaggle credentials, ever.

On kaggle.com, DownloadDataFiles redirects to a signed Google Cloud Storage URL and
StartSubmissionUpload hands out a resumable-upload URL, both on another host. Such a URL is its
own authority: an Authorization header there is at best refused (401) and at worst a leaked secret.
So storage gets a session of its own, as the official client does (a fresh `requests.Session()`):
no credentials, none of the API's headers. The requests session's own Authorization stripping on a
cross-host redirect covers the first download request; everything after it goes through here.
"""

from __future__ import annotations

import requests

from .retries import RetryPolicy


def _no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    # An explicit no-op auth: without one, requests would add credentials from ~/.netrc for the host.
    request.headers.pop("Authorization", None)
    return request


class Storage:
    """GETs and PUTs to signed storage URLs, with retries, and never a credential."""

    def __init__(self, policy: RetryPolicy):
        self.session = requests.Session()
        self.session.auth = _no_credentials
        adapter = policy.adapter(label="storage")
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def get(self, url: str, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.get(url, headers=headers, stream=True)

    def put(self, url: str, content: bytes) -> requests.Response:
        """One PUT of the whole file. Only 200/201 mean stored (a 308 is "incomplete")."""
        return self.session.put(url, data=content, headers={"Content-Type": "application/octet-stream"})
