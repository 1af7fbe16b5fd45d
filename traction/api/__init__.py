"""The workstation's HTTP API (FastAPI): see :func:`traction.api.app.create_app`."""

from traction.api.app import create_app

__all__ = ["create_app"]
