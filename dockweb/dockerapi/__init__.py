"""The Docker Engine API (1.41, Docker 20.10) on a unix or TCP socket: the fourth door.

``dockweb system service`` serves it, so the docker CLI, docker-py, docker-compose and
other Docker tools drive dockweb. The server (``server.py``) speaks HTTP/1.1 through h11;
each resource has a module of handlers (``system``, ``images``, ``containers``, ``exec``,
``archive``, ``volumes``, ``networks``, ``build``) registered on a ``Routes`` table
(``router.py``). Handlers call the same services as the CLI and the pages and take Docker's
shapes from ``dockweb.docker``; they never import the CLI.
"""
