"""Who may call what: the role-by-route matrix, as data, in this one place.

Each route needs one permission; each role holds a set of permissions. The auth dependency looks a
request's route up here, so a route missing from :data:`ROUTE_PERMISSIONS` is refused to everyone
(fail closed), and a test checks every role against every route.
"""

from __future__ import annotations

import enum

from session.accounts import Role


class Permission(enum.StrEnum):
    READ = "read"  # tables, sessions, samples, live telemetry, patients, clinicians, health
    RUN = "run"  # validate, start, pause, resume, stop, release, live settings changes
    REGISTER = "register"  # add patients (their weight and contraindications set the limits)
    DOCUMENT = "document"  # amend documentation fields
    EXPORT = "export"  # documents and billing files
    ACKNOWLEDGE = "acknowledge"  # clear a locked table's alarms after checking patient and table
    ADMIN = "admin"  # users, tokens, settings, clinicians


# Registering a patient records the facts the safety limits are checked against (weight,
# contraindications): a clinician's judgment, or the admin setting up the clinic - not the
# technician who runs the table, nor billing. Clinicians (name, credentials, NPI) are who signs
# and bills a note, so only the admin adds them, as it adds the users they log in as.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # Acknowledging a lock is for the people at the table who run it: the clinician, or the
    # technician operating under them. Billing and the admin never clear a safety lock.
    Role.TECHNICIAN: frozenset({Permission.READ, Permission.RUN, Permission.ACKNOWLEDGE}),
    # Clinicians document: they read back the note they sign, so they may export it too.
    Role.CLINICIAN: frozenset(
        {
            Permission.READ,
            Permission.RUN,
            Permission.ACKNOWLEDGE,
            Permission.DOCUMENT,
            Permission.EXPORT,
            Permission.REGISTER,
        }
    ),
    Role.BILLING: frozenset({Permission.READ, Permission.EXPORT}),
    Role.ADMIN: frozenset({Permission.READ, Permission.ADMIN, Permission.REGISTER}),
}

WEBSOCKET = "WS"  # the method name WebSocket routes go by in the matrix

ROUTE_PERMISSIONS: dict[tuple[str, str], Permission] = {
    ("GET", "/health"): Permission.READ,
    ("GET", "/me"): Permission.READ,
    ("GET", "/tables"): Permission.READ,
    ("GET", "/tables/{name}"): Permission.READ,
    ("POST", "/tables/{name}/ack"): Permission.ACKNOWLEDGE,
    ("POST", "/sessions/validate"): Permission.RUN,
    ("POST", "/sessions"): Permission.RUN,
    ("GET", "/sessions"): Permission.READ,
    ("GET", "/sessions/{session_id}"): Permission.READ,
    ("GET", "/sessions/{session_id}/samples"): Permission.READ,
    ("POST", "/sessions/{session_id}/pause"): Permission.RUN,
    ("POST", "/sessions/{session_id}/resume"): Permission.RUN,
    ("POST", "/sessions/{session_id}/stop"): Permission.RUN,
    ("POST", "/sessions/{session_id}/release"): Permission.RUN,
    ("POST", "/sessions/{session_id}/settings"): Permission.RUN,
    (WEBSOCKET, "/sessions/{session_id}/telemetry"): Permission.READ,
    ("GET", "/sessions/{session_id}/amendments"): Permission.READ,
    ("POST", "/sessions/{session_id}/amendments"): Permission.DOCUMENT,
    ("GET", "/sessions/{session_id}/export/{fmt}"): Permission.EXPORT,
    ("GET", "/claims"): Permission.EXPORT,
    ("POST", "/claims/runs"): Permission.EXPORT,
    ("GET", "/claims/pending"): Permission.EXPORT,
    ("GET", "/claims/runs/{run_id}/{fmt}"): Permission.EXPORT,
    ("POST", "/claims/{line_id}/correct"): Permission.EXPORT,
    ("POST", "/claims/{line_id}/void"): Permission.EXPORT,
    ("GET", "/patients"): Permission.READ,
    ("POST", "/patients"): Permission.REGISTER,
    ("GET", "/patients/{reference}/plan"): Permission.READ,
    ("PUT", "/patients/{reference}/plan"): Permission.REGISTER,
    ("GET", "/clinicians"): Permission.READ,
    ("POST", "/clinicians"): Permission.ADMIN,
    ("GET", "/admin/users"): Permission.ADMIN,
    ("POST", "/admin/users"): Permission.ADMIN,
    ("POST", "/admin/users/{name}/deactivate"): Permission.ADMIN,
    ("GET", "/admin/tokens"): Permission.ADMIN,
    ("POST", "/admin/tokens"): Permission.ADMIN,
    ("POST", "/admin/tokens/{token_id}/revoke"): Permission.ADMIN,
    ("GET", "/admin/settings"): Permission.ADMIN,
    ("GET", "/worklist"): Permission.READ,
}

PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
"""The API's own description, which holds no clinic data, is the only thing served without a token."""


def required(method: str, path: str) -> Permission | None:
    """The permission a route needs; None for a route not in the matrix (refused to all)."""
    return ROUTE_PERMISSIONS.get((method.upper(), path))


def allowed(role: Role | str, method: str, path: str) -> bool:
    permission = required(method, path)
    return permission is not None and permission in ROLE_PERMISSIONS[Role(role)]


def routes_for(role: Role) -> set[tuple[str, str]]:
    """Every (method, path) this role may call."""
    return {route for route in ROUTE_PERMISSIONS if allowed(role, *route)}
