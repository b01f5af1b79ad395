"""
execnet's C{WorkerPool}: run functions in threads of their own and get
their results, or let one thread (the main one, say) run what is spawned
while it is free.
"""

from __future__ import annotations

from typing import Any, Callable

from .._remote import ExecModel

__all__ = ["Reply", "WorkerPool"]


class Reply:
    """
    The outcome of one function given to L{WorkerPool.spawn}.

    @ivar task: C{(function, args, kwargs)}.
    @ivar running: whether it has not finished yet.
    """

    def __init__(
        self, task: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]], execmodel: ExecModel
    ) -> None:
        """
        @param task: C{(function, args, kwargs)}.
        @param execmodel: whose C{Event} says it has finished.
        """
        self.task = task
        self.running = True
        self._finished = execmodel.Event()
        self._outcome: tuple[bool, Any] = (False, None)

    def get(self, timeout: float | None = None) -> Any:
        """
        What the function returned; what it raised is raised here.

        @param timeout: seconds to wait; C{None} waits for ever.
        @raise OSError: if it has not finished by then.
        """
        self.waitfinish(timeout)
        failed, value = self._outcome
        if failed:
            raise value
        return value

    def waitfinish(self, timeout: float | None = None) -> None:
        """
        Wait until the function has finished, however.

        @param timeout: seconds to wait; C{None} waits for ever.
        @raise OSError: if it has not finished by then.
        """
        if not self._finished.wait(timeout):
            raise OSError(f"timeout waiting for {self.task!r}")

    def run(self) -> None:
        """Run the function, here and now."""
        function, args, kwargs = self.task
        try:
            self._outcome = (False, function(*args, **kwargs))
        except BaseException as e:
            self._outcome = (True, e)
        finally:
            self.running = False
            self._finished.set()


class WorkerPool:
    """
    Functions run in threads, each in one of its own, or, with
    C{hasprimary=True}, in the thread that calls
    L{integrate_as_primary_thread} whenever that thread is free.
    """

    def __init__(self, execmodel: ExecModel, hasprimary: bool = False) -> None:
        """
        @param execmodel: the execution model whose threads and locks it uses.
        @param hasprimary: a thread will call L{integrate_as_primary_thread}.
        @raise ValueError: for an execution model without threads.
        """
        if hasprimary and execmodel.backend not in ("thread", "main_thread_only"):
            raise ValueError("hasprimary=True requires thread model")
        self.execmodel = execmodel
        self._lock = execmodel.Lock()
        self._running: set[Reply] = set()
        self._idle: list[Any] = []  # events of waitall() calls
        self._shuttingDown = False
        self._primaryWakes = execmodel.Event() if hasprimary else None
        self._primaryTask: Reply | None = None

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Reply:
        """
        Run C{func(*args, **kwargs)}: in the primary thread if it is free,
        else in a new thread.

        @param func: the function.
        @param args: its positional arguments.
        @param kwargs: its keyword arguments.
        @raise ValueError: once the pool is shutting down.
        """
        reply = Reply((func, args, kwargs), self.execmodel)
        with self._lock:
            if self._shuttingDown:
                raise ValueError("pool is shutting down")
            self._running.add(reply)
            handed = self._handToPrimary(reply)
        if not handed:
            self.execmodel.start(self._perform, (reply,))
        return reply

    def _handToPrimary(self, reply: Reply) -> bool:
        # Lock held.  A main_thread_only primary takes every task, one after
        # the other; a thread-model one only those that find it free.
        wakes = self._primaryWakes
        if wakes is None:
            return False
        if wakes.is_set():
            if self.execmodel.backend != "main_thread_only" or self._primaryTask is None:
                return False
            self._primaryTask.waitfinish()
        self._primaryTask = reply
        wakes.set()
        return True

    def _perform(self, reply: Reply) -> None:
        reply.run()
        with self._lock:
            self._running.discard(reply)
            if not self._running:
                for event in self._idle:
                    event.set()
                self._idle.clear()

    def integrate_as_primary_thread(self) -> None:
        """Run what is handed to this thread until L{trigger_shutdown}."""
        wakes = self._primaryWakes
        if wakes is None:
            raise ValueError("the pool was made without hasprimary=True")
        while True:
            wakes.wait()
            reply = self._primaryTask
            if reply is None:
                return
            self._perform(reply)
            with self._lock:
                if self._shuttingDown:
                    return
                if reply is self._primaryTask:
                    wakes.clear()

    def trigger_shutdown(self) -> None:
        """Refuse new spawns; let the primary thread return once it is free."""
        with self._lock:
            self._shuttingDown = True
            if self._primaryWakes is not None:
                self._primaryTask = None
                self._primaryWakes.set()

    def active_count(self) -> int:
        """How many spawned functions have not finished."""
        return len(self._running)

    def waitall(self, timeout: float | None = None) -> bool:
        """
        Wait until every spawned function has finished; return whether they have.

        @param timeout: seconds to wait; C{None} waits for ever.
        """
        with self._lock:
            if not self._running:
                return True
            event = self.execmodel.Event()
            self._idle.append(event)
        return bool(event.wait(timeout))

    def terminate(self, timeout: float | None = None) -> bool:
        """
        L{trigger_shutdown}, then L{waitall}.

        @param timeout: seconds to wait; C{None} waits for ever.
        """
        self.trigger_shutdown()
        return self.waitall(timeout)
