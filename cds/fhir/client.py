"""The only module that talks HTTP to a FHIR server.

One shared httpx transport per process (:mod:`cds.fhir.transport`), used directly: a FHIR
query needs none of a client's cookies, redirects or auth flows, and does not get them. Every
query follows ``Bundle.link[next]`` up to a page cap and only within the server's own origin
(the access token is never sent anywhere else). Every failure becomes
:class:`~cds.errors.FhirServerError` with a ``kind`` that metrics and logs can use without
exposing data.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from cds.errors import FhirServerError
from cds.loopback import is_loopback_url
from cds.protocol.bundle import read_bundle

__all__ = ["FhirClient", "check_fhir_server_url"]

_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_USER_AGENT = "cds-breast-cancer-followup (CDS Hooks service)"


def check_fhir_server_url(url: str, *, allow_http: bool) -> str | None:
    """None if we may call ``url``; otherwise why not."""
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises on a port that is not a number in range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return "fhirServer is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "fhirServer is not an http(s) URL"
    if parts.query or parts.fragment:
        return "fhirServer must be a base URL without query or fragment"
    if parts.scheme == "http" and not (allow_http or is_loopback_url(url)):
        return "fhirServer must use https (set CDS_ALLOW_HTTP_FHIR to allow plain http)"
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port


class FhirClient:
    """Searches and reads against one FHIR base URL on behalf of one call."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        base_url: str,
        *,
        access_token: str | None,
        max_pages: int,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._transport = transport
        self._base = base_url.rstrip("/") + "/"
        self._headers = {
            "Accept": "application/fhir+json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": _USER_AGENT,
        }
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token}"
        self._extensions = {"timeout": httpx.Timeout(timeout_seconds).as_dict()}
        self._max_pages = max(1, max_pages)
        self._origin = _origin(self._base)

    def resolve(self, url: str) -> str:
        """``url`` made absolute against the FHIR base (a search, a read or a ``next`` link)."""
        return urljoin(self._base, url if urlsplit(url).scheme else url.lstrip("/"))

    def owns(self, url: str) -> bool:
        """True when ``url`` is on the FHIR server's own origin: only there goes our token."""
        return self._origin is not None and _origin(self.resolve(url)) == self._origin

    async def fetch(self, relative: str) -> list[dict[str, Any]]:
        """Run a read (``Patient/1``) or search (``Condition?patient=1``); all pages' resources.

        An absolute URL (a ``next`` link from prefetch) must be on the server's own origin.
        A result we cannot have whole fails (``page-cap``, ``foreign-origin``): a partial list
        could make a rule believe something is absent. A ``next`` link back to a page already
        read ends the search (every page was read).
        """
        if not self.owns(relative):
            raise FhirServerError(
                "refusing to send the access token to another origin", kind="foreign-origin"
            )
        url = self.resolve(relative)
        resources: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(self._max_pages):
            seen.add(url)
            body = await self._get(url)
            if body.get("resourceType") != "Bundle":
                if body.get("resourceType") == "OperationOutcome":
                    raise FhirServerError(
                        "the FHIR server answered with an OperationOutcome", kind="outcome"
                    )
                return [body]
            page = read_bundle(body)
            resources += page.resources
            next_url = page.next_url
            if next_url is None:
                return resources
            next_url = urljoin(url, next_url)
            if next_url in seen:
                return resources
            if not self.owns(next_url):
                raise FhirServerError(
                    "the FHIR server's next page is on another origin; not followed",
                    kind="foreign-origin",
                )
            url = next_url
        raise FhirServerError(
            f"the search has more than {self._max_pages} pages (CDS_FHIR_MAX_PAGES)",
            kind="page-cap",
        )

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            request = httpx.Request("GET", url, headers=self._headers, extensions=self._extensions)
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise FhirServerError("the FHIR server did not answer in time", kind="timeout") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FhirServerError("the FHIR server could not be reached", kind="connect") from exc
        if response.status_code in (401, 403):
            raise FhirServerError("the FHIR server refused our access token", kind="unauthorized")
        if response.status_code >= 300:  # redirects are not followed: they could leak the token
            raise FhirServerError(
                f"the FHIR server answered HTTP {response.status_code}",
                kind=f"http-{response.status_code // 100}xx",
            )
        if len(response.content) > _MAX_RESPONSE_BYTES:
            raise FhirServerError("the FHIR server's answer is too large", kind="too-large")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise FhirServerError(
                "the FHIR server's answer is not JSON", kind="invalid-json"
            ) from exc
        if not isinstance(body, dict):
            raise FhirServerError(
                "the FHIR server's answer is not a FHIR resource", kind="invalid-json"
            )
        return body
