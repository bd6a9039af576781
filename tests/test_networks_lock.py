"""The networks' lock (NetworkManager.locked): re-entrant within a thread, exclusive between
threads and processes. Reconcile holds it while it loads containers, and loading a container
whose supervisor has just died detaches its networks under the same lock: a lock that is not
re-entrant left the process waiting on itself forever, holding the store's lock too."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from dockweb.runtime.networks import NetworkManager
from tests.support.cli import REPO


def _in_thread(fn, timeout: float = 10.0) -> bool:
    """Whether ``fn`` returned within ``timeout`` seconds (run in a daemon thread)."""
    done = threading.Event()

    def run():
        fn()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(timeout)


def test_a_thread_holding_the_lock_takes_it_again(tmp_path):
    a, b = NetworkManager(str(tmp_path)), NetworkManager(str(tmp_path))  # two managers, one store

    def nested():
        with a.locked(), b.locked(), a.locked():
            pass

    assert _in_thread(nested), "a nested locked() waited on its own thread"


def test_other_threads_and_processes_still_wait(tmp_path):
    mgr = NetworkManager(str(tmp_path))
    order: list[str] = []
    code = (
        "import sys; from dockweb.runtime.networks import NetworkManager;"
        f"m = NetworkManager({str(tmp_path)!r});"
        "m.locked().__enter__(); print('taken', flush=True)"
    )
    with mgr.locked():
        with mgr.locked():
            pass  # the inner exit must not release the outer hold
        other = threading.Thread(target=lambda: _take(mgr, order))
        other.start()
        proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        time.sleep(1.0)
        assert order == [], "another thread took the lock while this one held it"
        assert proc.poll() is None, "another process took the lock while this one held it"
        order.append("held")
    other.join(timeout=10)
    assert order == ["held", "thread"]
    assert proc.communicate(timeout=30)[0] == "taken\n"


def _take(mgr: NetworkManager, order: list[str]) -> None:
    with mgr.locked():
        order.append("thread")
