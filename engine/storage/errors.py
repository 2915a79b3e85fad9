"""The one error the storage raises: ``StorageError``, for a data folder that is damaged where it
cannot be repaired safely, or that cannot be written (a full disk, a file size limit, an I/O
error). It is a ``TouchpointError`` like the core's errors (``actors.errors`` draws the tree), but
lives here, where it is raised: the pure core does no I/O and never raises it.
"""

from __future__ import annotations

from actors.errors import TouchpointError


class StorageError(TouchpointError):
    """The write-ahead log or a snapshot is damaged where it cannot be repaired safely, or could
    not be written (nothing half-written is left: the message says what was kept)."""
