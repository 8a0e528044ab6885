"""Response body of ``DELETE /v1/users/{user_id}`` (erasing a user)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DeletedRows(BaseModel):
    """Rows of the user deleted, per table."""

    interactions: int = Field(ge=0, description="rows deleted from the interaction log")
    impressions: int = Field(ge=0, description="recommendation lists shown to the user, deleted")


class UserErasureResponse(BaseModel):
    """What the erasure did. An id with no rows is erased too (zero counts): a trained
    model version or a cache may still hold it."""

    user_id: str
    erased_at: datetime = Field(description="when the erasure was committed (UTC)")
    deleted: DeletedRows
    refresh_pending: bool = Field(
        description="true when this server could not apply the erasure before answering "
        "(its read of the erasures, its delete of the user's late impressions, or its "
        "cache's drop of the user's cached states failed; "
        "see its log): the erasure is committed and the rows above are deleted, but until "
        "its next reload poll this server, like the other replicas, may still serve the "
        "user's cached or trained state. Repeating the DELETE is safe (it erases again)"
    )
