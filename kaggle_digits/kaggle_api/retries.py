"""Bounded retries for what is transient, and one rule: a call that is not idempotent is never resent
once it may have reached Kaggle."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import takewhile

from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from .. import config

log = logging.getLogger("kaggle_digits")

TRANSIENT_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class RetryPolicy:
    """429 (honouring Retry-After up to a cap), 5xx, drops and timeouts, a few times with backoff."""

    # The defaults live in config (KAGGLE_DIGITS_RETRIES / _BACKOFF / _TIMEOUT, checked there; tests make them quick).
    retries: int = config.RETRIES
    backoff: float = config.BACKOFF  # seconds before the first retry; doubles each retry after it
    retry_after_cap: float = 60.0  # Kaggle's Retry-After is not always right: never wait longer than this
    timeout: float = config.TIMEOUT  # per request (connect and each read)

    @classmethod
    def from_environment(cls) -> RetryPolicy:
        """The settings as config holds them now (read at the call, so a caller in this process may change them)."""
        return cls(retries=config.RETRIES, backoff=config.BACKOFF, timeout=config.TIMEOUT)

    def adapter(self, idempotent: bool = True, label: str | None = None) -> HTTPAdapter:
        """A transport with retries and a default timeout.

        `idempotent=False` (CreateSubmission): only what certainly did not reach the server is
        retried: a connection that could not be opened, and a 429 (refused before any work). A read
        timeout, a reset connection or a 5xx may come after the submission was made, so they are
        not retried: the caller records the outcome as unknown and settles it from Kaggle's list.
        """
        cap = self.retry_after_cap

        class LoggedRetry(Retry):
            def parse_retry_after(self, value: str) -> float:
                try:
                    return min(super().parse_retry_after(value), cap)
                except InvalidHeader:
                    return min(self.get_backoff_time() or 1.0, cap)  # a malformed Retry-After: back off instead

            def get_backoff_time(self) -> float:
                # urllib3 2.x waits nothing before the first retry, then factor * 2^(n-1) (0, 2, 4, 8 s for a
                # factor of 1). Here the first wait is the factor itself, doubling (1, 2, 4, 8, 16 s): a 429 storm
                # deserves a pause before the first retry too. Retry-After, when Kaggle sends one, comes first.
                errors = len(list(takewhile(lambda past: past.redirect_location is None, reversed(self.history))))
                if errors == 0:
                    return 0.0
                return float(min(self.backoff_max, self.backoff_factor * 2 ** (errors - 1)))

            def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
                new = super().increment(method, url, response, error, _pool, _stacktrace)
                reason = f"HTTP {response.status}" if response is not None and response.status else type(error).__name__
                attempt = len(new.history)
                where = label or (url or "").split("?")[0].rsplit("/", 1)[-1]
                log.warning("Kaggle: %s on %s; retrying (%d of %d)", reason, where, attempt, new.total + attempt)
                return new

        retry = LoggedRetry(
            total=self.retries,
            connect=self.retries,
            read=self.retries if idempotent else 0,
            other=self.retries if idempotent else 0,
            status=self.retries,
            backoff_factor=self.backoff,
            backoff_max=self.retry_after_cap,
            status_forcelist=TRANSIENT_STATUSES if idempotent else (429,),
            # Kaggle's API is all POSTs; every call but CreateSubmission is safe to repeat.
            allowed_methods=None,
            respect_retry_after_header=True,
            raise_on_status=False,  # hand back the last answer: the caller turns it into a clear message
        )
        timeout = self.timeout

        class TimedAdapter(HTTPAdapter):
            def send(self, request, **kwargs):
                if kwargs.get("timeout") is None:
                    kwargs["timeout"] = timeout
                return super().send(request, **kwargs)

        return TimedAdapter(max_retries=retry)
