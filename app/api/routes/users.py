"""Erasing a user: ``DELETE /v1/users/{user_id}`` (admin token).

The ``ErasureSync`` this route nudges (``app.state.erasures``) is started and
stopped by the app's lifespan (``app.main``).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import SQLAlchemyError

from app.api.admin_auth import AdminRoute, require_admin
from app.api.deps import ServicesDep
from app.api.params import UserIdPath
from app.api.responses import ADMIN, errors
from app.schemas_users import DeletedRows, UserErasureResponse
from app.serving.state import database_unavailable
from app.users import ErasureSync, erase_users

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["users"], route_class=AdminRoute)


@router.delete(
    "/users/{user_id:id}",
    response_model=UserErasureResponse,
    dependencies=[Depends(require_admin)],
    responses=errors(*ADMIN, 422, 503),
)
def erase_user(user_id: UserIdPath, request: Request, services: ServicesDep) -> UserErasureResponse:
    """Erase a user (right to erasure, admin token): every row of theirs in the interaction
    log and the impressions, deleted in one transaction, and their erasure recorded.

    From then on no answer uses the erased data: this server forgets the user's cached
    state before answering, the other replicas at their next reload poll; model versions
    trained before the erasure serve the user as one with no training history (fold-in
    from what they log afterwards, else the popularity fallback) until a version trained
    after it is served. Interactions logged after the erasure are new data.

    200 with the rows deleted per table; an id with no rows is erased too (zero counts:
    a trained version or a cache may still hold it), and erasing again is 200 (it erases
    what was logged since). The trained models' weights still carry the user's influence
    on item parameters until the next retrain (docs/deployment.md, "Erasing a user").

    ``refresh_pending`` true: the erasure is committed, but this server's own poll after
    it failed, so this server applies it at its next reload poll, as the other replicas
    do (a 503 would say nothing was erased; a retry is safe either way).
    """
    services.recommender.check_id(user_id, "user_id")
    # The lists this server showed the user are queued for the table: write them first,
    # so they are deleted with the rest and counted (other servers' at their poll).
    try:
        services.impressions.flush()
        erased = erase_users(services.sessions, [user_id])
    except SQLAlchemyError as exc:
        raise database_unavailable(exc) from exc
    sync: ErasureSync = request.app.state.erasures
    applied = sync.apply_now()  # this server stops serving the user's data before answering
    if not applied:
        log.warning(
            "user erased at %s, but this server could not apply it yet (see above); "
            "it will at its next reload poll",
            erased.erased_at.isoformat(),
        )
    return UserErasureResponse(
        user_id=user_id,
        erased_at=erased.erased_at,
        deleted=DeletedRows(**erased.deleted),
        refresh_pending=not applied,
    )
