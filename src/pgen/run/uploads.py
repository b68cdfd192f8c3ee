"""Records that name uploaded images, and the uploads themselves (``Engine.ingest_uploaded``
and ``Engine.save_upload``, which the service calls).

Records go through the same reader as ``pgen ingest`` (``pgen.context.ingest``: the same
checks, the same messages naming the line and field) and are written in one transaction,
so a request is acknowledged only once all of it is stored. Images never arrive as paths
on the server's disk: they are uploaded first, stored as the user's artifacts (or the
catalog's), and records name them as ``upload:<id>``.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from pgen.context.base import ContextStore, IngestStats
from pgen.context.ingest import AUDIO, IngestError, Located, check_items, read_records
from pgen.context.media import UPLOADS_KIND
from pgen.context.records import Document, Item, Subject
from pgen.context.sqlite.artifact_folders import safe_name
from pgen.run.preferences import with_detected

UPLOAD_PREFIX = "upload:"
UPLOADS = UPLOADS_KIND  # the artifact kind of uploaded images
IMAGE = "image_path"  # a document's image (a photo's), in its fields
CATALOG = "catalog-uploads"  # the shared kind of uploaded item images


def ingest_file(store: ContextStore, path: Path, source: str) -> IngestStats:
    """Checked like ``pgen ingest``; errors name ``source`` and the line, not our temp file."""
    try:
        located = read_records(path)
        located = [_resolve_uploads(store, loc) for loc in located]
        check_items(store, located)
    except IngestError as error:
        raise IngestError(error.where.replace(str(path), source), error.problem) from None
    # Items first: interactions reference them. One transaction: all or nothing.
    ordered = sorted(located, key=lambda loc: not isinstance(loc.record, Item))
    return store.add(with_detected(store, [loc.record for loc in ordered]))


def _resolve_uploads(store: ContextStore, loc: Located) -> Located:
    record = loc.record
    where = loc.where.rsplit(":", 1)[-1]
    if isinstance(record, Item) and record.image_path is not None:
        path = _catalog_upload(store, record.image_path, where)
        return Located(record.model_copy(update={"image_path": path}), loc.where)
    if isinstance(record, Document) and AUDIO in record.fields:
        raise IngestError(
            loc.where,
            f"field 'fields.{AUDIO}': over HTTP a voice note is an upload (POST "
            "/users/{user}/voice-notes), not a path on the server",
        )
    if isinstance(record, Document) and IMAGE in record.fields:
        # A photo is the user's own upload: a path would let a client make the server read
        # (and describe, and match faces in) any file, another user's included.
        uploads = store.artifacts(record.user_id) if store.has_user(record.user_id) else {}
        value = str(record.fields[IMAGE])
        path = _user_upload(uploads, value, loc.where, f"fields.{IMAGE}", ("image.*",))
        fields = {**record.fields, IMAGE: path}
        return Located(record.model_copy(update={"fields": fields}), loc.where)
    if isinstance(record, Subject):
        uploads = store.artifacts(record.user_id) if store.has_user(record.user_id) else {}
        paths = [_user_upload(uploads, value, loc.where) for value in record.image_paths]
        return Located(record.model_copy(update={"image_paths": paths}), loc.where)
    return loc


def _upload_id(value: str, where: str, field: str) -> str:
    if not value.startswith(UPLOAD_PREFIX):
        raise IngestError(
            where,
            f"field '{field}': over HTTP an image is an upload ('upload:<id>' from POST "
            "/users/{user}/uploads or /uploads), not a path on the server",
        )
    return value[len(UPLOAD_PREFIX) :]


def _user_upload(
    uploads: dict[tuple[str, str], Path],
    value: str,
    where: str,
    field: str = "image_paths",
    patterns: tuple[str, ...] = ("image.*", "audio.*"),
) -> str:
    """The file of the user's upload ``value`` names. A subject's references: images, or a
    voice subject's clips (``save_audio``); a photo: an image."""
    name = _upload_id(value, where, field)
    folder = uploads.get((UPLOADS, name))
    files = sorted(f for pattern in patterns for f in folder.glob(pattern)) if folder else []
    if not files:
        raise IngestError(where, f"field '{field}': no upload {name[:40]!r} of this user")
    return str(files[0])


def _catalog_upload(store: ContextStore, value: str, where: str) -> str:
    name = _upload_id(value, where, "image_path")
    for folder in store.shared_paths(CATALOG):
        if folder.name == safe_name(name):  # the store's folder name for it
            files = sorted(folder.glob("image.*"))
            if files:
                return str(files[0])
    raise IngestError(where, f"field 'image_path': no catalog upload {name[:40]!r}")


def save_image(store: ContextStore, data: bytes, user_id: str | None) -> dict[str, Any]:
    """An uploaded image, checked to be one, stored by content: the user's artifact (or,
    without a user, the tenant's catalog's)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = (image.format or "png").lower()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"the upload is not an image this server can read ({error})") from None
    name = hashlib.sha256(data).hexdigest()[:32]
    if user_id is None:
        folder = store.shared_path(CATALOG, name)
    else:
        store.user(user_id)  # an unknown user: not found, before anything is written
        folder = store.artifact_path(user_id, UPLOADS, name)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"image.{kind}"
    if not target.exists():
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)  # a crash leaves no half image under the real name
    return {"ref": UPLOAD_PREFIX + name, "bytes": len(data), "format": kind}


def save_audio(store: ContextStore, data: bytes, user_id: str, filename: str) -> dict[str, Any]:
    """An uploaded clip of the user's (a voice subject's reference), checked to be audio,
    stored by content as the user's artifact; records name it as ``upload:<id>``."""
    from pgen.models.speech_audio import read_audio

    suffix = Path(filename).suffix.lower() or ".wav"
    clip = read_audio(data, filename, suffix=suffix)  # AudioError (a ValueError): one line
    name = hashlib.sha256(data).hexdigest()[:32]
    store.user(user_id)  # an unknown user: not found, before anything is written
    folder = store.artifact_path(user_id, UPLOADS, name)
    target = folder / f"audio{suffix}"
    if not target.exists():
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
    return {"ref": UPLOAD_PREFIX + name, "bytes": len(data), "seconds": round(clip.seconds, 3)}
