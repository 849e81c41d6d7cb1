"""The operator console: ``GET /console`` pages to see a deploy's state, try images on it and
manage its face gallery, served from the package with no build step and no external assets.

``views.console_blueprint`` is registered by api/app.py (config ``console: true``, the
default). The pages are rendered on the server (templates/), their scripts (static/) call the
deploy's own API routes, so every action passes the checks a client's request passes
(docs/console.md).
"""

from __future__ import annotations

from .views import console_blueprint

__all__ = ["console_blueprint"]
