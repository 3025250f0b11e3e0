"""The base of every provider API client: one pooled session, a timeout on every call, JSON money as
``Decimal``, and every failure turned into a typed ``ProviderError``.

A plugin's client subclasses ``ApiClient``, sets ``provider``, implements ``authenticate`` (the
headers that sign one request) and, where the provider signals errors its own way, overrides
``check``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from . import jsonutil, metrics
from .errors import (ProviderAPIError, ProviderAuthError, ProviderError, ProviderNotFound,
                     ProviderUnavailable)


@dataclasses.dataclass(frozen=True)
class ApiResponse:
    """A provider's answer: HTTP status, parsed JSON body (None when empty or not JSON), raw text."""

    status: int
    data: Any
    text: str
    headers: Mapping[str, str]


def basic_auth(user: str, password: str) -> str:
    """The value of an ``Authorization: Basic`` header."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class ApiClient:
    """Base class for provider API clients. Thread-safe: share one instance per provider."""

    provider: str = "provider"

    def __init__(self, base_url: str, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self.base_url).path
        self.timeout = timeout
        self._local = threading.local()
        self._pid = os.getpid()

    @property
    def session(self) -> requests.Session:
        # One pooled session per thread: requests does not promise a Session is thread-safe. And
        # one per process: a forked child (gunicorn, a task queue) must not write to its parent's
        # pooled connections.
        if self._pid != os.getpid():
            self._local, self._pid = threading.local(), os.getpid()
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def authenticate(self, method: str, fullpath: str, body: bytes) -> dict[str, str]:
        """Headers that authenticate one request; ``fullpath`` includes the base path and query."""
        return {}

    def send(self, method: str, path: str, *, json: Any = None, form: Mapping[str, str] | None = None,
             params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
             authenticate: bool = True) -> ApiResponse:
        """Send one request and return the answer, whatever its status; transport failures raise."""
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        fullpath = self._base_path + path + (f"?{query}" if query else "")
        request_headers = {"Accept": "application/json"}
        body = b""
        if json is not None:
            body = jsonutil.dumps(json, separators=(",", ":")).encode()
            request_headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode()
            request_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if authenticate:
            request_headers.update(self.authenticate(method, fullpath, body))
        request_headers.update(headers or {})
        url = self.base_url + path + (f"?{query}" if query else "")
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, data=body or None, headers=request_headers,
                                            timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            metrics.api_request(self.provider, time.perf_counter() - started, "timeout")
            raise ProviderUnavailable(self.provider, f"{method} {path} timed out after {self.timeout}s") from None
        except requests.RequestException as exc:
            metrics.api_request(self.provider, time.perf_counter() - started, "connection")
            raise ProviderUnavailable(self.provider, f"{method} {path} failed: {type(exc).__name__}") from None
        metrics.api_request(self.provider, time.perf_counter() - started,
                            f"http_{response.status_code}" if response.status_code >= 400 else None)
        try:
            data = jsonutil.loads(response.content) if response.content else None
        except ValueError:
            data = None
        return ApiResponse(response.status_code, data, response.text, response.headers)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Send, ``check`` the answer, and return its JSON object."""
        response = self.send(method, path, **kwargs)
        self.check(response)
        if not isinstance(response.data, dict):
            raise ProviderUnavailable(self.provider, f"{method} {path}: the answer is not a JSON object",
                                      status=response.status)
        return response.data

    def check(self, response: ApiResponse) -> None:
        """Raise the ``ProviderError`` that ``response`` amounts to; return for a success."""
        status = response.status
        if 200 <= status < 300:
            return
        message = self.message(response)
        cls: type[ProviderError]
        if status in (401, 403):
            cls = ProviderAuthError
        elif status == 404:
            cls = ProviderNotFound
        elif status == 429 or status >= 500 or status < 200 or 300 <= status < 400:
            cls = ProviderUnavailable
        else:
            cls = ProviderAPIError
        raise cls(self.provider, message, status=status, payload=response.data)

    @staticmethod
    def message(response: ApiResponse) -> str:
        """The provider's own explanation, from the usual JSON fields, else the status line."""
        data = response.data
        if isinstance(data, dict):
            for key in ("message", "error_description", "detail", "error"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return value
        return f"HTTP {response.status}"
