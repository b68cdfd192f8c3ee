"""Where media paths in ingested files may point.

A subject's reference images and an item's image are opened later, by training and
generation, as the store has them. A hostile file could name ``../../etc/passwd``,
``/proc/self/environ`` or another user's adapter under the store's artifacts and have it
read into a prompt, an image or an embedding. So at ingest every path is resolved
(relative to the ingested file's folder, symlinks followed) and must land inside that
folder or a configured media root, never inside the store's own files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pgen.errors import InvalidRequest

MEDIA_ROOT_ENV = "PGEN_MEDIA_ROOT"  # more folders media may live in (os.pathsep-separated)
# The artifact kind of a user's uploaded files (the service's: over HTTP every image of a
# user's records is one). A user's own uploads are readable as that user's media.
UPLOADS_KIND = "uploads"


class MediaError(InvalidRequest):
    pass


def media_roots(folder: Path, extra: list[Path] | None = None) -> list[Path]:
    """The ingested file's folder, then the configured media roots, resolved."""
    configured = [Path(p) for p in os.environ.get(MEDIA_ROOT_ENV, "").split(os.pathsep) if p]
    return [p.resolve() for p in [folder, *(extra or []), *configured]]


def resolve_media(value: str, roots: list[Path], artifacts_root: Path) -> str:
    """The absolute path the store keeps for ``value``, or a MediaError saying why not."""
    candidate = Path(value).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    resolved = candidate.resolve()  # follows symlinks: a link out of the folder is caught
    if resolved.is_relative_to(artifacts_root.resolve()):
        raise MediaError("image path points into the store's own files")
    if not any(resolved.is_relative_to(root) for root in roots):
        where = ", ".join(str(root) for root in roots)
        raise MediaError(
            f"image path resolves outside the file's folder and the media roots ({where}); "
            f"set {MEDIA_ROOT_ENV} to allow another folder"
        )
    if resolved.exists():
        mode = resolved.stat().st_mode
        if stat.S_ISDIR(mode):
            raise MediaError("image path is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise MediaError("image path is not a regular file")
    return str(resolved)
