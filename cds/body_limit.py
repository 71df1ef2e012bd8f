"""Reading an HTTP body from a server we do not control, within a size limit on the bytes
received and on the bytes they decompress to.

A compressed body is checked after decompression too, while it is decompressed, chunk by
chunk: 1 MB of zeros gzips to about 1 KB, so a small answer can otherwise grow into gigabytes
in memory before any check sees it. Used for FHIR answers and JWK Sets.
"""

from __future__ import annotations

import zlib

__all__ = ["BodyLimit", "BodyTooLarge", "BodyUndecodable"]

# Content-Encodings undone here (what our clients ask for); any other is refused.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyTooLarge(ValueError):
    """More than the limit was received, or would be after decompression."""


class BodyUndecodable(ValueError):
    """The body's Content-Encoding is unknown or its compressed bytes are damaged."""


class BodyLimit:
    """Feed it the raw chunks as they arrive; ``body()`` is the decoded whole.

    Raises :class:`BodyTooLarge` as soon as ``limit`` bytes are passed either way, so at most
    about ``limit`` bytes are ever held.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        self.limit = limit
        self.received = 0
        self.decoded = 0
        self._parts: list[bytes] = []
        encoding = (content_encoding or "identity").strip().lower()
        self._zlib: zlib._Decompress | None = None
        if encoding in _WBITS:
            self._zlib = zlib.decompressobj(_WBITS[encoding])
        elif encoding != "identity":
            raise BodyUndecodable(f"has an unknown Content-Encoding {encoding[:40]!r}")

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.limit:
            raise BodyTooLarge(f"more than {self.limit} bytes received")
        if self._zlib is None:
            self._keep(chunk)
            return
        data = chunk
        try:
            while data:
                # At most what may still be kept, plus one byte to notice going past it.
                self._keep(self._zlib.decompress(data, self.limit - self.decoded + 1))
                data = self._zlib.unconsumed_tail
        except zlib.error:
            raise BodyUndecodable("could not be decompressed") from None

    def body(self) -> bytes:
        if self._zlib is not None:
            try:
                self._keep(self._zlib.flush())
            except zlib.error:
                raise BodyUndecodable("could not be decompressed") from None
        return b"".join(self._parts)

    def _keep(self, data: bytes) -> None:
        self.decoded += len(data)
        if self.decoded > self.limit:
            raise BodyTooLarge(f"more than {self.limit} bytes after decompression")
        if data:
            self._parts.append(data)
