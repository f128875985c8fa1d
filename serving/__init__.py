"""The candidate retrieval service: `create_app(bundle_path)`."""

from serving.app import create_app
from serving.service import RetrievalService
from serving.settings import Settings

__all__ = ["RetrievalService", "Settings", "create_app"]
