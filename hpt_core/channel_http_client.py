"""The trial's end of the channel over HTTP, for trials on another machine than their controller's."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any, Mapping

from hpt_core.channel import API_PREFIX, ChannelRefused


class HttpLink:
    """One persistent HTTP connection to the controller; a broken exchange is a ConnectionError."""

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self._prefix = f"{parts.path}{API_PREFIX}"
        self._headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def exchange(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        data = json.dumps(body, allow_nan=True).encode()
        try:
            self._connection.request("POST", f"{self._prefix}{name}", body=data, headers=self._headers)
            response = self._connection.getresponse()
            payload = response.read()
        except http.client.HTTPException as error:
            raise ConnectionError(f"{type(error).__name__}: {error}") from None
        if response.will_close:
            self._connection.close()
        if response.status != 200:
            raise ChannelRefused(response.status, _error_message(payload, response.reason))
        return json.loads(payload or b"{}")

    def close(self) -> None:
        self._connection.close()


def _error_message(payload: bytes, reason: str) -> str:
    try:
        return str(json.loads(payload).get("error", reason))
    except (ValueError, AttributeError):
        return str(reason)
