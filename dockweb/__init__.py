"""dockweb: a web dashboard for local container images and containers.

This package must stay importable without Django or Celery: ``dockweb.runtime`` and
``dockweb.cli`` are plain Python. The Celery app lives in ``dockweb.celery`` and is only
imported by tasks and by ``celery -A dockweb.celery worker``.
"""
