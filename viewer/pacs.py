"""The configured PACS as a dicomweb-client session (settings PACS_*)."""

from __future__ import annotations

from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings


class _TimeoutSession(requests.Session):
    """A session whose every request has a timeout, so a dead PACS never hangs us."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(*args, **kwargs)


def pacs_client(*, timeout: float = 30.0) -> DICOMwebClient:
    session = _TimeoutSession(timeout)
    if settings.PACS_USERNAME:
        session.auth = (settings.PACS_USERNAME, settings.PACS_PASSWORD)
    client = DICOMwebClient(url=settings.PACS_DICOMWEB_URL, session=session)
    client.set_http_retry_params(retry=False)
    return client
