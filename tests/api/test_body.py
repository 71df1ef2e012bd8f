"""read_json on its own: content type, size cap (declared and streamed), empty and invalid JSON."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import Request
from starlette.types import Message

from cds.api.body import read_json
from cds.errors import BadRequest, PayloadTooLarge, UnsupportedMedia


def _request(chunks: list[bytes], headers: dict[str, str], *, readable: bool = True) -> Request:
    """A request whose body arrives in ``chunks`` (one ``http.request`` message each)."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks or [b""])
    ]

    async def receive() -> Message:
        assert readable, "the body was read"
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


def _read(
    chunks: list[bytes],
    content_type: str = "application/json",
    max_bytes: int = 100,
    content_length: str | None = None,
) -> Any:
    headers = {"content-type": content_type}
    if content_length is not None:
        headers["content-length"] = content_length
    return asyncio.run(read_json(_request(chunks, headers), max_bytes))


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/fhir+json", "Application/JSON; charset=utf-8"],
)
def test_json_media_types_are_read_whatever_their_case_and_parameters(content_type: str) -> None:
    assert _read([b'{"a": 1}'], content_type) == {"a": 1}


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/jsonx", "json"])
def test_other_media_types_are_415_naming_the_header(content_type: str) -> None:
    with pytest.raises(UnsupportedMedia) as raised:
        _read([b"{}"], content_type)
    assert raised.value.expression == ["Content-Type"]


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    headers = {"content-type": "application/json", "content-length": "101"}
    request = _request([b"{}"], headers, readable=False)
    with pytest.raises(PayloadTooLarge, match="larger than 100 bytes"):
        asyncio.run(read_json(request, 100))


def test_a_streamed_body_is_capped_even_when_it_declares_less() -> None:
    with pytest.raises(PayloadTooLarge):
        _read([b"[" + b"1," * 30, b"1," * 30 + b"1]"], content_length="5")


def test_a_length_that_is_not_a_number_is_ignored_and_the_stream_decides() -> None:
    assert _read([b"[1, 2]"], content_length="lots") == [1, 2]
    with pytest.raises(PayloadTooLarge):
        _read([b'"' + b"x" * 200 + b'"'], content_length="-1")


def test_a_body_of_exactly_the_cap_is_read_in_chunks() -> None:
    body = b'"' + b"x" * 98 + b'"'
    assert len(body) == 100
    assert _read([body[:40], body[40:], b""]) == "x" * 98
    with pytest.raises(PayloadTooLarge):
        _read([body, b" "])


def test_an_empty_body_is_400() -> None:
    with pytest.raises(BadRequest, match="empty"):
        _read([])


def test_invalid_json_is_400_with_the_position_but_not_the_text() -> None:
    with pytest.raises(BadRequest, match=r"not valid JSON \(.* at position \d+\)") as raised:
        _read([b'{"patientId": "secret-7", '])
    assert "secret-7" not in raised.value.diagnostics
