"""dockweb's Linux runtime: plain Python, no Django, no Celery.

References, the registry client, the content and layer store, overlay mounts and (later)
container execution. Long operations take an ``on_progress`` callback; nothing here reads
global configuration: the store root and the registry client are passed in.
"""
