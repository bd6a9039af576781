"""The signals `dockweb run` passes on to its container (docker's --sig-proxy): the proxy of
the direct path (run_common.SignalProxy) and the runner's client (launch.py) forward the
same ones. Imports nothing but ``_signal``: launch.py is all a `dockweb run` through the
runner imports."""

from __future__ import annotations

import _signal

# Signals `run` passes on to the container (docker's --sig-proxy, moby cli's
# ForwardAllSignals): all but those that concern this process alone (job control's
# SIGTTIN and SIGTTOU, SIGCHLD, SIGPIPE, SIGURG, the synchronous faults and resource
# limits) and the uncatchable.
_OWN = (
    _signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD, _signal.SIGPIPE, _signal.SIGURG,
    _signal.SIGTTIN, _signal.SIGTTOU, _signal.SIGILL, _signal.SIGTRAP, _signal.SIGABRT,
    _signal.SIGBUS, _signal.SIGFPE, _signal.SIGSEGV, _signal.SIGSYS, _signal.SIGXCPU,
    _signal.SIGXFSZ,
)  # fmt: skip
PROXIED = tuple(
    s for s in (*range(1, 32), *range(_signal.SIGRTMIN, _signal.SIGRTMAX + 1)) if s not in _OWN
)
