"""The user's stated preferences over HTTP, scoped to the caller's tenant like every other
route (the tenant's ``Engine``): ``GET``, ``POST /users/{u}/preferences``, ``PUT`` and
``DELETE /users/{u}/preferences/{id}``. An unknown user or preference, or one of another
user, is 404 and nothing is written."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import Field

from pgen.context.records import MAX_PREFERENCE_CHARS, Preference
from pgen.serve.deps import TenantEngine
from pgen.serve.schemas import Body
from pgen.serve.userpaths import UserId, segment

router = APIRouter(tags=["preferences"])


class PreferenceBody(Body):
    text: str = Field(min_length=1, max_length=MAX_PREFERENCE_CHARS)


def _preference_id(
    preference_id: Annotated[str, PathParam(description="the preference's id, percent-encoded")],
) -> str:
    return segment(preference_id)


PreferenceId = Annotated[str, Depends(_preference_id)]


def _json(preference: Preference) -> dict[str, Any]:
    return preference.model_dump(mode="json")


@router.get("/users/{user_id}/preferences")
def list_preferences(user_id: UserId, engine: TenantEngine) -> list[dict[str, Any]]:
    """The user's stated preferences, oldest first, each with the turn and span it came from."""
    return [_json(p) for p in engine.preferences(user_id)]


@router.post("/users/{user_id}/preferences", status_code=201)
def add_preference(user_id: UserId, body: PreferenceBody, engine: TenantEngine) -> Any:
    return _json(engine.add_preference(user_id, body.text))


@router.put("/users/{user_id}/preferences/{preference_id}")
def edit_preference(
    user_id: UserId, preference_id: PreferenceId, body: PreferenceBody, engine: TenantEngine
) -> Any:
    return _json(engine.edit_preference(user_id, preference_id, body.text))


@router.delete("/users/{user_id}/preferences/{preference_id}")
def remove_preference(user_id: UserId, preference_id: PreferenceId, engine: TenantEngine) -> Any:
    return {"removed": _json(engine.remove_preference(user_id, preference_id))}
