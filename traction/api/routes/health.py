"""Is the service up, and who am I."""

from __future__ import annotations

from fastapi import APIRouter

from session.accounts import Role
from traction.api.access import ROLE_PERMISSIONS
from traction.api.auth import CurrentUser, Service
from traction.api.schemas import HealthOut, MeOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Service health")
async def health(service: Service) -> HealthOut:
    """The workstation, its schema revision, and each table with its running session (if any)."""
    return HealthOut(
        status="ok",
        workstation=service.settings.workstation,
        schema_revision=service.schema_revision,
        tables={
            name: slot.running.session_id if slot.running else None
            for name, slot in service.slots.items()
        },
    )


@router.get("/me", response_model=MeOut, summary="The calling user")
def me(user: CurrentUser) -> MeOut:
    """Who the token belongs to and what their role may do."""
    role = Role(user.role)
    return MeOut(
        name=user.name,
        role=role,
        clinician_id=user.clinician_id,
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[role]),
    )
