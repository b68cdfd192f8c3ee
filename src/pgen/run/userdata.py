"""The Engine's verbs over one user's context: ingest, list, view, export, search,
feedback, outputs' files, recommendations. Each reads or writes the store scoped to the
user it names; an unknown user is ``NotFound`` before anything else happens."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgen.context.base import ContextStore, IngestStats, UserSummary
from pgen.context.records import Feedback, Interaction, Record
from pgen.errors import InvalidRequest, NotFound
from pgen.results import ArtifactInfo, SearchHit, UserExport, UserView
from pgen.run.generation import check_instruction, check_k
from pgen.run.preferences import with_detected
from pgen.usermodel.retrievers import Retrievers

if TYPE_CHECKING:
    from pgen.context.ingest import IngestHook
    from pgen.models.base import TextModel
    from pgen.results import Recommendation


def ingest(
    store: ContextStore,
    source: str | Path | Iterable[Record],
    progress: bool,
    hook: IngestHook | None = None,
) -> IngestStats:
    from pgen.context.ingest import Located
    from pgen.context.ingest import ingest as ingest_file

    def detected(records: Iterable[Record]) -> list[Record]:
        return with_detected(store, records)

    if isinstance(source, str | Path):
        return ingest_file(store, source, progress=progress, hook=hook, derive=detected)
    if hook is None:
        return store.add(detected(source))
    located = hook.before([Located(r, f"record {n}") for n, r in enumerate(source, start=1)])
    stats = store.add(detected([loc.record for loc in located]))
    hook.after([loc.record for loc in located])
    return stats


def users(store: ContextStore, offset: int, limit: int | None) -> list[UserSummary]:
    if offset < 0 or (limit is not None and limit < 1):
        raise InvalidRequest("offset must be >= 0 and limit >= 1")
    return store.users(offset, limit)


def user_view(store: ContextStore, user_id: str, limit: int) -> UserView:
    check_k(limit, "limit")
    user = store.user(user_id)
    documents = store.documents(user_id)
    return UserView(
        user=user,
        documents=documents[-limit:],
        total_documents=len(documents),
        interactions=len(store.interactions(user_id)),
        subjects=store.subjects(user_id),
        feedback=len(store.feedback(user_id)),
        outputs=len(store.outputs(user_id)),
    )


def export_user(store: ContextStore, user_id: str) -> UserExport:
    from pgen.context.artifacts import read_meta

    user = store.user(user_id)
    artifacts = []
    for (kind, name), folder in sorted(store.artifacts(user_id).items()):
        meta = read_meta(folder)
        artifacts.append(
            ArtifactInfo(
                kind,
                name,
                complete=meta is not None,
                base_model=None if meta is None else meta.base_model,
                created=None if meta is None else meta.created,
            )
        )
    return UserExport(
        user=user,
        documents=store.documents(user_id),
        interactions=store.interactions(user_id),
        subjects=store.subjects(user_id),
        artifacts=artifacts,
        outputs=store.outputs(user_id),
        feedback=store.feedback(user_id),
        preferences=store.preferences(user_id),
    )


def search(
    store: ContextStore, retrievers: Retrievers, user_id: str, query: str, k: int, retriever: str
) -> list[SearchHit]:
    check_k(k)
    check_instruction(query)
    store.user(user_id)
    try:
        found = retrievers.get(retriever)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
    hits = found.retrieve(user_id, query, k)
    documents = {d.doc_id: d for d in store.documents(user_id, [h.doc_id for h in hits])}
    return [
        SearchHit(documents[hit.doc_id], hit.score, found.name)
        for hit in hits
        if hit.doc_id in documents
    ]


def feedback(
    store: ContextStore,
    user_id: str,
    *,
    output_id: str | None = None,
    item_id: str | None = None,
    thumbs: int | None = None,
    prompt: str | None = None,
    chosen: str | None = None,
    rejected: str | None = None,
    feedback_id: str | None = None,
) -> Feedback | Interaction:
    """An item's thumbs become an interaction (``thumbs_up``/``thumbs_down``) the
    recommenders learn from; anything else is a feedback record ``dpo`` learns from."""
    store.user(user_id)
    now = datetime.now(UTC)
    if item_id is not None:
        if thumbs is None or output_id is not None or chosen or rejected:
            raise InvalidRequest("feedback on an item is item_id with thumbs (-1 or 1) alone")
        if not store.known_items([item_id]):
            raise InvalidRequest(f"unknown item {item_id[:40]!r}")
        action = "thumbs_up" if thumbs > 0 else "thumbs_down"
        interaction = Interaction(
            user_id=user_id, item_id=item_id, action=action, rating=float(thumbs), time=now
        )
        store.add([interaction])
        return interaction
    if output_id is not None:
        stored = store.output(user_id, output_id)
        prompt = prompt or stored.instruction
    record = Feedback(
        user_id=user_id,
        feedback_id=feedback_id or uuid.uuid4().hex,
        output_id=output_id,
        thumbs=thumbs,  # type: ignore[arg-type]  # validated by the record
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        time=now,
    )
    store.add([record])
    return record


def output_image(store: ContextStore, user_id: str, output_id: str, index: int) -> Path:
    """Only files the store keeps: a path recorded elsewhere is "not found", never read."""
    stored = store.output(user_id, output_id)
    images = list(getattr(stored, "media", None) or stored.provenance.get("images") or [])
    if not 0 <= index < len(images):
        raise NotFound(f"output {output_id} has no image {index}")
    path = Path(images[index])
    if not path.resolve().is_relative_to(store.artifacts_root.resolve()):
        raise NotFound(f"output {output_id} has no image {index} in the store")
    return path


def recommend(
    store: ContextStore,
    text_model: Callable[[], TextModel],
    user_id: str,
    k: int,
    model: str,
    rerank: int,
) -> list[Recommendation]:
    from pgen.recommend.service import recommend as ranked

    check_k(k)
    if rerank < 0:
        raise InvalidRequest(f"rerank must be >= 0, got {rerank}")
    reranker = text_model() if rerank > 0 else None
    return ranked(store, model, user_id, k, reranker, candidates=rerank)


def search_photos(
    store: ContextStore, photos: Callable[[], Any], user_id: str, query: str, k: int
) -> Any:
    check_k(k)
    check_instruction(query)
    store.user(user_id)
    return photos().search_photos(user_id, query, k)


def train_recommender(
    store: ContextStore,
    model: str,
    params: dict[str, Any] | None,
    embedder: Callable[[], Any],
    progress: Callable[[str], None] | None,
) -> tuple[Any, Path]:
    from pgen.recommend.service import train_for_serving

    return train_for_serving(store, model, params or {}, embedder, progress)
