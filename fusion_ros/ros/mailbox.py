"""
One-slot mailbox between the subscription callbacks and the inference thread.

Callbacks never wait for inference: a new pair replaces an unread one (counted
as dropped), so the thread always works on the freshest pair and latency cannot
grow when frames arrive faster than inference runs.
"""

import threading
from typing import Any, Optional


class Mailbox:
    """Thread-safe single slot with overwrite-and-count semantics."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Optional[Any] = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store item, replacing an unread one; return True if one was dropped."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
            return replaced

    def get(self, timeout: Optional[float] = None) -> Optional[Any]:
        """Take the item, waiting up to timeout; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    @property
    def closed(self) -> bool:
        """Whether close() was called and not undone by reopen()."""
        return self._closed

    def close(self) -> None:
        """Wake the reader for shutdown; later gets return None at once."""
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    def reopen(self) -> None:
        """Accept items again after close (node re-activated)."""
        with self._cond:
            self._closed = False
