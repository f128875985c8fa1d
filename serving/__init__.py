"""The candidate retrieval service: `create_app(bundle_path)`."""

from recsys.serving.app import create_app
from recsys.serving.service import RetrievalService
from recsys.serving.settings import Settings

__all__ = ["RetrievalService", "Settings", "create_app"]
