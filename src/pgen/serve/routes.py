"""The tenant's REST routes. Each is a thin call into the tenant's ``Engine``; blocking
calls run on the server's thread pool (plain ``def``), generation goes through the
batcher so that concurrent requests share model batches."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from pgen.components import ImageRequest, TextRequest
from pgen.config import settings_from
from pgen.context.records import Interaction
from pgen.engine import Engine
from pgen.errors import NotFound
from pgen.models.base import TextSink
from pgen.results import Generation
from pgen.run.modalities import build_request
from pgen.serve import record_uploads as http_records
from pgen.serve.deps import TenantEngine, TenantName, TheService
from pgen.serve.errors import ApiError
from pgen.serve.jobs import train_args
from pgen.serve.schemas import (
    CompareBody,
    FeedbackBody,
    GenerateBody,
    ImageBody,
    PhotoSearchBody,
    RecommenderBody,
    RecordsBody,
    SearchBody,
    SettingsBody,
    TrainBody,
)
from pgen.serve.userpaths import OutputId, UserId
from pgen.training.registry import TrainRequest, get_trainer, stoppable

router = APIRouter()
JOB_STOP_WAIT_S = 30.0  # delete-user waits this long for the user's running job to stop


def plain(value: Any) -> Any:
    """JSON-safe: dates, paths and numpy scalars as text."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def generation_json(result: Generation) -> dict[str, Any]:
    found: dict[str, Any] = {
        "output_id": result.output_id,
        "user_id": result.user_id,
        "strategy": result.strategy,
        "text": result.text,
        "provenance": result.provenance.as_dict(),
        "prompt": [{"role": m.role, "content": m.content} for m in result.prompt],
        "details": result.details,
    }
    if result.modality != "text":  # another modality's output: what it is, and its files
        found.update(modality=result.modality, media=len(result.media))
    return plain(found)


async def generate(
    service: Any,
    engine: Engine,
    request: TextRequest,
    body: Any,
    save: bool = True,
    sink: TextSink | None = None,
    checked: bool = False,
    tenant: str | None = None,
) -> Generation:
    """The request checked once, alone (before it joins a batch of others; ``checked``:
    the caller did), then generated in a batch; ``sink``: its text as decoded. With the
    ``tenant``, a stale adapter served gets a retrain job queued (one at a time)."""
    if not checked:
        request = await run_in_threadpool(engine.check, request)
    settings = body.settings(engine.generation)
    result: Generation = await service.batcher.generate(engine, request, settings, save, sink)
    if tenant is not None and result.details.get("stale_adapter"):
        # A stale adapter was served (stale_adapters = "serve"): retrain it, once.
        kind = str(result.details["stale_adapter"])

        def retrain() -> None:
            checked = engine.check(TrainRequest(request.user_id, kind))
            submit_training(service, tenant, checked, once=True)

        await run_in_threadpool(retrain)
    return result


# -- records and users ----------------------------------------------------------------
@router.post("/records", tags=["context"])
def add_records(body: RecordsBody, engine: TenantEngine) -> dict[str, Any]:
    """Records (as in pgen's JSONL, each with its ``type``), written in one transaction."""
    stats = http_records.ingest_json(engine, body.records)
    return {"seen": stats.seen, "written": stats.written}


@router.post("/records/jsonl", tags=["context"])
def upload_records(file: Annotated[UploadFile, File()], engine: TenantEngine) -> dict[str, Any]:
    """A JSONL file of records: checked whole, then written in one transaction."""
    stats = http_records.ingest_upload(engine, file.file, file.filename or "upload.jsonl")
    return {"seen": stats.seen, "written": stats.written}


@router.post("/users/{user_id}/uploads", tags=["context"])
def upload_image(
    user_id: UserId, file: Annotated[UploadFile, File()], engine: TenantEngine
) -> dict[str, Any]:
    """An image of the user's (a subject's reference photo): name it in records by ``ref``."""
    return engine.save_upload(file.file.read(), user_id)


@router.post("/uploads", tags=["context"])
def upload_catalog_image(file: Annotated[UploadFile, File()], engine: TenantEngine) -> Any:
    """An image of a catalog item: name it in an item record's ``image_path`` by ``ref``."""
    return engine.save_upload(file.file.read(), None)


@router.get("/users", tags=["users"])
def list_users(
    engine: TenantEngine,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return {"users": [asdict(row) for row in engine.users(offset, limit)], "offset": offset}


@router.get("/users/{user_id}", tags=["users"])
def show_user(
    user_id: UserId, engine: TenantEngine, limit: Annotated[int, Query(ge=1, le=1000)] = 10
) -> Any:
    view = engine.user(user_id, limit=limit)
    return plain(
        {
            "user": view.user.model_dump(mode="json"),
            "documents": [d.model_dump(mode="json") for d in view.documents],
            "total_documents": view.total_documents,
            "interactions": view.interactions,
            "subjects": [s.model_dump(mode="json") for s in view.subjects],
            "feedback": view.feedback,
            "outputs": view.outputs,
        }
    )


@router.delete("/users/{user_id}", tags=["users"])
def delete_user(
    user_id: UserId, engine: TenantEngine, tenant: TenantName, service: TheService
) -> dict[str, Any]:
    """Forget the user everywhere (rows, files, indexes, recommenders, job records)."""
    if not engine.has_user(user_id):
        raise NotFound(user_id)
    # The user's jobs first: a running one is asked to stop, and gets a moment to, so
    # that it saves no artifact after the user's files are gone.
    jobs = service.jobs.forget_user(tenant, user_id)
    service.jobs.wait_forgotten(tenant, user_id, JOB_STOP_WAIT_S)
    counts = engine.delete_user(user_id)
    counts["jobs"] = jobs
    return {"deleted": True, "counts": counts}


@router.get("/users/{user_id}/export", tags=["users"])
def export_user(user_id: UserId, engine: TenantEngine) -> Any:
    """Everything stored of the user, as JSON: context, artifacts, feedback and outputs."""
    found = engine.export_user(user_id)
    return plain(
        {
            "user": found.user.model_dump(mode="json"),
            "documents": [d.model_dump(mode="json") for d in found.documents],
            "interactions": [i.model_dump(mode="json") for i in found.interactions],
            "subjects": [s.model_dump(mode="json") for s in found.subjects],
            "artifacts": [asdict(a) for a in found.artifacts],
            "feedback": [f.model_dump(mode="json") for f in found.feedback],
            "outputs": [asdict(o) for o in found.outputs],
            "preferences": [p.model_dump(mode="json") for p in found.preferences],
        }
    )


# -- search and generation ------------------------------------------------------------
@router.post("/users/{user_id}/search", tags=["generation"])
def search(user_id: UserId, body: SearchBody, engine: TenantEngine) -> Any:
    hits = engine.search(user_id, body.query, k=body.k, retriever=body.retriever)
    return plain([{"document": h.document.model_dump(mode="json"), "score": h.score} for h in hits])


@router.post("/users/{user_id}/photos/search", tags=["generation"])
def search_photos(user_id: UserId, body: PhotoSearchBody, engine: TenantEngine) -> Any:
    """The user's photos (``photo`` documents) showing the people and concepts the query
    names, best first; a person is found by face, group photos included (``pgen
    search-photos``). ``unused_words``: what the query said that no configured model can
    search by."""
    hits = engine.search_photos(user_id, body.query, k=body.k)
    found = [  # scores may be numpy scalars: numbers in JSON, never their text
        {
            "doc_id": hit.doc_id,
            "image_path": hit.image_path,  # as the user's own record gave it
            "score": float(hit.score),
            "concepts": {name: float(c) for name, c in hit.concepts.items()},
        }
        for hit in hits
    ]
    return {"hits": found, "unused_words": hits.unused_words}


@router.post("/users/{user_id}/generate", tags=["generation"])
async def generate_text(
    user_id: UserId,
    body: GenerateBody,
    engine: TenantEngine,
    service: TheService,
    tenant: TenantName,
) -> Any:
    common = {"k": body.k, "retriever": body.retriever, "query": body.query, "frame": body.frame}
    request = build_request(
        body.modality, user_id, body.instruction, body.strategy, common=common, options=body.options
    )
    if isinstance(request, TextRequest):  # text shares model batches with other requests
        made = await generate(service, engine, request, body, body.save, tenant=tenant)
        return generation_json(made)
    result = await run_in_threadpool(lambda: engine.generate(request, save=body.save))
    if not isinstance(result, Generation):
        raise ValueError(f"{body.modality} outputs come from their own route")
    return generation_json(result)


@router.post("/users/{user_id}/compare", tags=["generation"])
async def compare(
    user_id: UserId,
    body: CompareBody,
    engine: TenantEngine,
    service: TheService,
    tenant: TenantName,
) -> Any:
    """One instruction under several strategies (a baseline beside the personalized)."""
    import asyncio

    requests = [
        TextRequest(user_id, body.instruction, name, body.k, body.retriever, frame=body.frame)
        for name in dict.fromkeys(body.strategies)
    ]
    results = await asyncio.gather(
        *(generate(service, engine, r, body, tenant=tenant) for r in requests)
    )
    return {"results": [generation_json(r) for r in results]}


@router.post("/users/{user_id}/images", tags=["generation"])
def generate_image(user_id: UserId, body: ImageBody, engine: TenantEngine) -> Any:
    from pgen.models.base import ImageGenerationSettings

    request = ImageRequest(
        user_id, body.instruction, body.strategy, body.subject, body.method, body.keywords_weight
    )
    result = engine.generate_image(request, settings_from(ImageGenerationSettings, body))
    return plain(
        {
            "output_id": result.output_id,
            "strategy": result.strategy,
            "prompt": result.prompt,  # what the image model was given
            "images": [
                f"/users/{quote(user_id, safe='')}/outputs/{result.output_id}/images/{n}"
                for n in range(len(result.paths))
            ],
            "provenance": result.provenance.as_dict(),
        }
    )


@router.get("/users/{user_id}/outputs/{output_id}/images/{index}", tags=["generation"])
def output_image(
    user_id: UserId, output_id: OutputId, index: Annotated[int, ""], engine: TenantEngine
) -> FileResponse:
    return FileResponse(engine.output_image(user_id, output_id, index), media_type="image/png")


# -- feedback and outputs -------------------------------------------------------------
@router.post("/users/{user_id}/feedback", tags=["feedback"])
def feedback(user_id: UserId, body: FeedbackBody, engine: TenantEngine) -> Any:
    """Thumbs on an output or a recommended item, or a chosen/rejected pair: stored, and
    used by ``dpo`` training (outputs, pairs) and the recommenders (items)."""
    record = engine.feedback(
        user_id,
        output_id=body.output_id,
        item_id=body.item_id,
        thumbs=body.thumbs,
        prompt=body.prompt,
        chosen=body.chosen,
        rejected=body.rejected,
        feedback_id=uuid.uuid4().hex,
    )
    if isinstance(record, Interaction):
        return {"recorded": "interaction", "item_id": record.item_id, "action": record.action}
    return {"recorded": "feedback", **record.model_dump(mode="json")}


@router.get("/users/{user_id}/feedback", tags=["feedback"])
def list_feedback(user_id: UserId, engine: TenantEngine) -> Any:
    return [f.model_dump(mode="json") for f in engine.feedback_of(user_id)]


@router.get("/users/{user_id}/outputs", tags=["feedback"])
def list_outputs(user_id: UserId, engine: TenantEngine) -> Any:
    return plain([asdict(o) for o in engine.outputs(user_id)])


# -- recommendation, training and jobs ------------------------------------------------
@router.get("/users/{user_id}/recommendations", tags=["recommendation"])
def recommend(
    user_id: UserId,
    engine: TenantEngine,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    model: Annotated[str, Query(min_length=1, max_length=64)] = "pop",
) -> Any:
    if not engine.has_user(user_id):
        raise NotFound(user_id)
    try:
        found = engine.recommend(user_id, k, model=model)
    except FileNotFoundError:
        message = f"no trained recommender {model[:40]!r}: POST /recommenders/train first"
        raise ApiError(409, "not_trained", message) from None
    return plain([{"item": r.item.model_dump(mode="json"), "score": r.score} for r in found])


@router.post("/users/{user_id}/train", status_code=202, tags=["training"])
def train(
    user_id: UserId, body: TrainBody, engine: TenantEngine, tenant: TenantName, service: TheService
) -> Any:
    """Train one of the user's artifacts as a job. ``steps``: optimizer steps (methods
    that can stop midway, which a cancel then stops between steps: every built-in one)."""
    # Checked now (method, steps, users, cohort), once: refused here, not in the job.
    checked = engine.check(
        TrainRequest(user_id, body.method, body.subject, tuple(body.cohort), None, body.steps)
    )
    return submit_training(service, tenant, checked).as_dict()


def submit_training(service: Any, tenant: str, checked: TrainRequest, once: bool = False) -> Any:
    """A checked training request as a job (``once``: unless one for the same user and
    method is queued or running): the ``train`` work with the request's fields."""
    return service.jobs.submit(
        tenant,
        f"train:{checked.method}",
        checked.user_id,
        "train",
        train_args(checked),
        cancellable=stoppable(get_trainer(checked.method)),
        once=once,
    )


@router.post("/recommenders/train", status_code=202, tags=["training"])
def train_recommender(body: RecommenderBody, tenant: TenantName, service: TheService) -> Any:
    args = {"model": body.model, "params": body.params}
    kind = f"recommender:{body.model}"
    return service.jobs.submit(tenant, kind, None, "recommender", args).as_dict()


@router.get("/jobs", tags=["training"])
def list_jobs(tenant: TenantName, service: TheService) -> Any:
    return [job.as_dict() for job in service.jobs.of_tenant(tenant)]


@router.get("/jobs/{job_id}", tags=["training"])
def job_status(job_id: str, tenant: TenantName, service: TheService) -> Any:
    return service.jobs.get(tenant, job_id).as_dict()


@router.delete("/jobs/{job_id}", tags=["training"])
def cancel_job(job_id: str, tenant: TenantName, service: TheService) -> Any:
    return service.jobs.cancel(tenant, job_id).as_dict()


# -- the tenant's settings ------------------------------------------------------------
@router.get("/settings", tags=["tenant"])
def get_settings(tenant: TenantName, service: TheService) -> dict[str, bool]:
    return service.keys.settings(tenant)


@router.put("/settings", tags=["tenant"])
def put_settings(body: SettingsBody, tenant: TenantName, service: TheService) -> Any:
    """``memory``: store each chat turn of a user as their document (deduplicated)."""
    values = {k: v for k, v in body.model_dump().items() if v is not None}
    return service.keys.set_settings(tenant, values)
