"""Loading the fused kernels (sharding.loader.gather) off the loader's critical path.

Before its first call a numba kernel costs about a second of one-time work in each process:
``import numba`` (~0.25 s) and the set-up of numba's CPU target on first use (~0.7 s, most of it
numba importing ``scipy.linalg`` to probe for BLAS, which it does whenever scipy is installed,
whatever the kernel uses). :func:`start` does that work in a daemon thread, once per process (a
forked DataLoader worker starts its own), and :func:`ready` says whether it has finished. Until it
has, a loader makes its batches with the exact numpy path (``HostBatcher.reference_batch``), which
gives the same arrays, so the switch changes neither the batches nor their order. A loader starts
the load once its first batch is made: the load is mostly Python imports, which hold the GIL, and
would otherwise slow that first batch down (it runs at most ~1 s of batches on the numpy path).

Nothing here imports numba: ``import sharding.loader`` and constructing a TokenLoader never wait on
it. The slot states shared by the kernel and the document tables live here for the same reason.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from types import ModuleType

log = logging.getLogger(__name__)

# document-table slot states (see sharding.loader.gather)
SLOT_CLOSED = 0
SLOT_OPEN = 1
SLOT_SKIPPED = 2

_EXIT_WAIT_S = 60.0  # how long interpreter exit waits for an unfinished background load

_lock = threading.Lock()
_pid: int | None = None  # the process whose thread set _done
_done = threading.Event()
_error: list[BaseException] = []


def _load(done: threading.Event) -> None:
    try:
        from sharding.loader.gather import load_kernels

        load_kernels()
    except BaseException as exc:  # kept for kernels(), which re-raises it in the caller's thread
        log.warning("loading the loader kernels failed: %r", exc)
        _error.append(exc)
    finally:
        done.set()


def start() -> None:
    """Begin loading the kernels in a background thread, unless this process already has. Cheap
    and idempotent; never blocks on numba."""
    global _pid, _done
    with _lock:
        if _pid == os.getpid():
            return
        _pid = os.getpid()
        _done = threading.Event()  # a forked child's copy of the parent's state says nothing
        _error.clear()
        done = _done
    threading.Thread(target=_load, args=(done,), name="token-loader-kernels", daemon=True).start()
    # a process that exits while the thread is inside numba's or scipy's native initialisation can abort
    # ("terminate called without an active exception", seen when a script exits right after its first batch):
    # exit waits for the load to finish, a second or so at most
    atexit.register(_wait_at_exit, os.getpid(), done)


def _wait_at_exit(pid: int, done: threading.Event) -> None:
    if os.getpid() == pid:  # a forked child inherits the hook but not the thread
        done.wait(_EXIT_WAIT_S)


def ready() -> bool:
    """True once this process's background load (see :func:`start`) has finished; False before it
    has started. Also True when it failed: :func:`kernels` then raises the failure, rather than
    batches silently staying on the slow path."""
    return _pid == os.getpid() and _done.is_set()


def kernels() -> ModuleType:
    """The kernel module (sharding.loader.gather), waiting for the background load if it is still
    running. Raises what the load raised (ImportError when numba is missing, for instance)."""
    start()
    _done.wait()
    if _error:
        raise _error[0]
    from sharding.loader import gather

    return gather
