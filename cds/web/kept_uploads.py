"""The preview's last uploaded files, kept in memory so the next run can use the same file.

A browser empties a file input each time the page comes back, so without this a user who
uploaded a record would have to choose it again for every hook. The page carries a random token
for its file; the newest few files are kept, in this process only (with several workers, a run
that lands on another one asks for the file again).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["KeptUpload", "KeptUploads"]

KEPT_FILES = 8


@dataclass(frozen=True)
class KeptUpload:
    token: str
    filename: str
    content: bytes


class KeptUploads:
    """The newest ``capacity`` uploads by token (least recently used dropped first)."""

    def __init__(self, capacity: int = KEPT_FILES) -> None:
        self._capacity = capacity
        self._files: OrderedDict[str, KeptUpload] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, filename: str, content: bytes) -> KeptUpload:
        kept = KeptUpload(secrets.token_urlsafe(16), filename[:120], content)
        with self._lock:
            self._files[kept.token] = kept
            while len(self._files) > self._capacity:
                self._files.popitem(last=False)
        return kept

    def get(self, token: str) -> KeptUpload | None:
        with self._lock:
            kept = self._files.get(token)
            if kept is not None:
                self._files.move_to_end(token)
            return kept
