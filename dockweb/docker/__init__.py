"""Docker's rules, once, without Django: what every door of dockweb (the CLI, the pages, the
JSON API, an Engine API) shows and accepts the way Docker does.

One module per concern:

* ``times``: Go's time and duration texts (``About a minute ago``, RFC 3339, time.String()).
* ``filters``: ``-f key=value`` maps, Go's ``path.Match`` for ``reference=``, ``label=``.
* ``images``: docker/cli's image rows (a row per repository:tag, per digest with --digests:
  ``group_references``, the one grouping step the CLI and the pages share).
* ``run_options``: ``run``/``create`` options into a runtime ContainerSpec.
* ``containers``: a runtime Container into ``docker inspect``'s ContainerJSON, and that
  into a Container row's fields.
* ``ps``: types.Container (what ``docker ps`` gets), its rows, ports and filters.
* ``volumes``, ``stats``: docker's Volume object and volume rows; ``docker stats`` rows.
* docker/cli's ``--format`` engine: ``formatter`` (tables, ``json``, templates over rows),
  ``template`` (Go's text/template; ``template_parse`` its parser, ``template_funcs`` its
  functions), ``gofmt`` (Go's printing of values, FormatError), ``tabwriter``. It lives
  here, not in the CLI, because the rows above carry its methods (``.Label "k"``) and any
  door that offers ``--format``-style output (an Engine API, the pages) needs the same engine.

Rules the runtime needs too live in the runtime, and every door imports them from there:
the status text and guards (``dockweb.runtime.containers.state``: ``status_text``,
``Status.can_*``), which images are listed, dangling or share layers
(``dockweb.runtime.imagelist``), container.Config's field order
(``dockweb.runtime.imageconfig``), human sizes and durations (``dockweb.runtime.units``).

It may import ``dockweb.runtime``; nothing of Django, Celery, the apps or the CLI. The
package's ``__init__`` imports nothing, so that the CLI's fast ``run`` path loads only the
modules it uses.
"""
