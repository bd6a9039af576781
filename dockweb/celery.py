"""The Celery app. Start a worker with ``celery -A dockweb.celery worker``.

Tasks import ``app`` from here (``from dockweb.celery import app``); ``dockweb/__init__.py``
deliberately does not, so that the runtime and the CLI never load Celery. Every task that
runs a row of work is a thin wrapper around a ``dockweb.jobs`` runner (claim, run, record);
the job layer queues it after commit by its dotted name.
"""

from __future__ import annotations

import os

from celery import Celery

from dockweb.jobs.queues import default_queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockweb.settings")

app = Celery("dockweb")
# Every CELERY_* Django setting configures the app (CELERY_BROKER_URL -> broker_url ...).
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each kind's task goes to its lane's queue (dockweb/jobs/queues.py, routed by the job
# layer); any other task to the quick lane's.
app.conf.task_default_queue = default_queue()
app.conf.task_routes = ("dockweb.jobs.runner.route_task",)
# Finds <app>/tasks.py in every installed app.
app.autodiscover_tasks()
