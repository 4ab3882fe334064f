"""Where the intake's time goes, step by step: timers hooked around a few calls in the benchmark's
worker process only (mailbot itself has no timing code).

Each step's time is exclusive: when a timed call runs inside another (a flush inside a raw-store
insert, a commit inside the drain), the inner one's time counts for its own step and not for the
outer one's, so the steps add up to at most the whole cycle; ``rest`` is what is left (classify,
correlate, apply, the queries, the ORM's bookkeeping). Wall-clock and CPU time are both kept,
per thread: the drain runs beside the reading, as in the daemon, so CPU time is each thread's
own and adds up to the process's, while wall-clock steps of the two threads overlap (their sum
can exceed the cycle, and ``rest`` then reads 0).

The steps:

- ``fetch``: the IMAP fetch of each batch (``ImapMailbox.fetch_new``/``fetch_uids``);
- ``parse``: the dedupe key read from the headers and the parse of the message
  (``dedupe_key``, ``parse_message`` as the pipeline calls them); for a batch parsed in parse
  processes, handing its bytes over and waiting for the results (their own CPU time is apart);
- ``store``: the raw bytes kept (compress, seal, insert) and every ORM flush (the INSERTs and
  UPDATEs of cases, events, messages, outbox rows);
- ``compose``: the receipt rendered and composed (``outgoing.receipt`` as the pipeline calls it);
- ``send``: the outbox drain (claim, SMTP to the sink, mark sent), its commits aside;
- ``commit``: ``Session.commit`` itself, without the flush it starts (that is ``store``).

A hook whose target is gone (renamed by later work) is listed in ``missing`` and its step reads
0, rather than the benchmark failing.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

STEPS = ("fetch", "parse", "store", "compose", "send", "commit")


class Timers:
    """Exclusive wall-clock and CPU time per step, over nested timed calls."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = dict.fromkeys(STEPS, 0.0)
        self.cpu: dict[str, float] = dict.fromkeys(STEPS, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(STEPS, 0)
        # Per thread (the drain runs beside the reading): its stack of steps and when it was
        # last charged, in wall-clock time and in that thread's CPU time.
        self._local = threading.local()

    def _thread(self) -> Any:
        here = self._local
        if not hasattr(here, "stack"):
            here.stack, here.since = [], (0.0, 0.0)
        return here

    def _charge(self) -> None:
        here = self._thread()
        wall, cpu = time.perf_counter(), time.thread_time()
        if here.stack:
            step = here.stack[-1]
            self.wall[step] += wall - here.since[0]
            self.cpu[step] += cpu - here.since[1]
        here.since = (wall, cpu)

    def enter(self, step: str) -> None:
        self._charge()
        self._thread().stack.append(step)
        self.calls[step] += 1

    def leave(self) -> None:
        self._charge()
        self._thread().stack.pop()

    def timed(self, step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.enter(step)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()

        return wrapper

    def timed_iter(self, step: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        """A generator function whose every ``next`` is timed (not the consumer's work)."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            inner = fn(*args, **kwargs)
            while True:
                self.enter(step)
                try:
                    item = next(inner)
                except StopIteration:
                    return
                finally:
                    self.leave()
                yield item

        return wrapper

    def result(self, messages: int, total_wall: float, total_cpu: float) -> dict[str, Any]:
        n = max(1, messages)
        wall = {**self.wall, "rest": max(0.0, total_wall - sum(self.wall.values()))}
        cpu = {**self.cpu, "rest": max(0.0, total_cpu - sum(self.cpu.values()))}
        return {
            "messages": messages,
            "wall_ms_per_message": {k: v / n * 1000 for k, v in wall.items()},
            "cpu_ms_per_message": {k: v / n * 1000 for k, v in cpu.items()},
            "calls": dict(self.calls),
        }


def install(timers: Timers) -> list[str]:
    """Hook the timers into mailbot's modules (in this process); the hooks that found no target."""
    from sqlalchemy.orm import Session

    from mailbot.intake import parse_pool, pipeline
    from mailbot.mail import imap
    from mailbot.store import CompressedRawStore, SealedRawStore

    missing: list[str] = []

    def hook(owner: Any, name: str, step: str, *, each: bool = False) -> None:
        fn = getattr(owner, name, None)
        if fn is None:
            missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return
        setattr(owner, name, (timers.timed_iter if each else timers.timed)(step, fn))

    hook(imap.ImapMailbox, "fetch_new", "fetch", each=True)
    hook(imap.ImapMailbox, "fetch_uids", "fetch")
    hook(pipeline, "dedupe_key", "parse")
    hook(pipeline, "parse_message", "parse")
    # A large batch is parsed in parse processes; what the daemon's process pays for it is
    # handing the bytes over and waiting for (and reading) the results.
    hook(parse_pool.ParsePool, "_hand_over", "parse")
    hook(parse_pool.ParsePool, "_collect", "parse")
    hook(SealedRawStore, "put", "store")
    hook(CompressedRawStore, "put", "store")
    hook(Session, "flush", "store")
    hook(pipeline, "receipt", "compose")
    hook(Session, "commit", "commit")
    return missing
