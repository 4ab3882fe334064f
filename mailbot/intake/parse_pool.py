"""Parsing a backlog on the machine's other cores, ahead of the daemon.

Parsing is most of what a message costs, and it needs nothing but the message's bytes
(``mailbot.intake.prepared``). On a backlog (a first start on a full mailbox, a day of outage
caught up) the daemon fetches batches *n + 1* and *n + 2* and hands them to parse processes
before it applies batch *n*, so that its own process does only what needs the database while
the next batches are parsed elsewhere (with each report's duplicate signature).

Nothing depends on it: a small batch (a message or two, as mail arrives one at a time) is
parsed in the daemon's process as before, which is quicker than a trip to another process; and
a message whose preparation failed there, or a batch whose parse processes died, is prepared in
the daemon's process when it is applied, exactly as without the pool. The processes are started
("spawn", so none inherits the daemon's threads or connections) at the first large batch, and
end after a pass over the mailbox that gave them nothing (or with the daemon).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING

from mailbot.intake.prepared import Prepared, Signer, prepare
from mailbot.mail.message import FetchedMessage

if TYPE_CHECKING:  # not loaded by the parse processes, which need none of the database layer
    from mailbot.similar import SimilarReports

log = logging.getLogger("mailbot.intake")

# Fewer messages than this in a batch: parsed in the daemon's process (mail arriving as it comes).
MIN_BATCH = 8
# Large batches handed over beyond the one being applied: the parse processes always have the
# next one to work on while the daemon applies a batch.
AHEAD_BATCHES = 2
MAX_PROCESSES = 4


def automatic_processes() -> int:
    """One parse process per core beyond the daemon's own, at most MAX_PROCESSES; none on one
    core."""
    return max(0, min(MAX_PROCESSES, (os.cpu_count() or 1) - 1))


Ahead = list[Prepared | None]


class ParsePool:
    def __init__(self, processes: int, max_bytes: int,
                 similar: SimilarReports | None = None) -> None:
        self.processes = processes
        self.max_bytes = max_bytes
        # Each report's signature for the duplicate check is worked out there too (asked for
        # at the first large batch: it loads what the check needs).
        self.similar = similar
        self._executor: ProcessPoolExecutor | None = None
        self._handed = False  # something was handed over since the last rest()

    def ahead(
        self, batches: Iterable[list[FetchedMessage]]
    ) -> Iterator[tuple[list[FetchedMessage], Ahead]]:
        """Each batch with what was prepared for it (None: to be prepared when applied), in
        order. Up to AHEAD_BATCHES batches are fetched and handed to the parse processes before
        the oldest of them is yielded, so that they always have the next one to work on; a small
        batch is yielded as soon as those before it are (nothing is fetched ahead for it)."""
        waiting: deque[tuple[list[FetchedMessage], list[Future[Ahead]]]] = deque()
        for batch in batches:
            handed = self._hand_over(batch)
            if handed:
                waiting.append((batch, handed))
                if len(waiting) > AHEAD_BATCHES:
                    yield self._collect(*waiting.popleft())
                continue
            while waiting:
                yield self._collect(*waiting.popleft())
            yield batch, [None] * len(batch)
        while waiting:
            yield self._collect(*waiting.popleft())

    def rest(self) -> None:
        """After a pass over the mailbox: when nothing was handed over since the last pass (the
        backlog is read), the processes end, and their memory is given back; the next large
        batch starts them again."""
        if not self._handed:
            self.close()
        self._handed = False

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _hand_over(self, batch: list[FetchedMessage]) -> list[Future[Ahead]]:
        if self.processes < 1 or len(batch) < MIN_BATCH:
            return []
        # A few pieces per process, so that one slow message does not hold up the rest.
        size = -(-len(batch) // (self.processes * 2))
        pieces = [[m.raw for m in batch[i:i + size]] for i in range(0, len(batch), size)]
        for _ in range(2):  # processes found dead are started afresh, once
            try:
                executor = self._started()
                signer = self.similar.signer if self.similar is not None else None
                handed = [executor.submit(prepare_all, raws, self.max_bytes, signer)
                          for raws in pieces]
                self._handed = True
                return handed
            except Exception as exc:  # could not start or reach them
                self._lost(exc)
        return []  # the daemon parses alone

    def _collect(self, batch: list[FetchedMessage], futures: list[Future[Ahead]]
                 ) -> tuple[list[FetchedMessage], Ahead]:
        """The batch with what its parse processes prepared."""
        try:
            return batch, [p for future in futures for p in future.result()]
        except Exception as exc:  # a process died (memory, a signal): its batch parses here
            self._lost(exc)
            return batch, [None] * len(batch)

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_parse_process, initargs=(os.getpid(),))
            log.info("parsing large batches in %d process(es)", self.processes)
        return self._executor

    def _lost(self, exc: BaseException) -> None:
        log.warning("parse processes failed (%s); the batch is parsed in the daemon's process",
                    type(exc).__name__)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def prepare_all(raws: list[bytes], max_bytes: int, signer: Signer | None = None) -> Ahead:
    """In a parse process: each message prepared, or None where that raised (the daemon then
    prepares it itself, and records the failure as it would have)."""
    results: Ahead = []
    for raw in raws:
        try:
            results.append(prepare(raw, max_bytes, signer))
        except Exception:
            results.append(None)
    return results


def _start_parse_process(daemon_pid: int) -> None:
    """In each parse process as it starts."""
    # Parsing logs only its own trouble (a part it could not read), and the daemon records that
    # with the message anyway (its defects); warnings reach standard error, named as ours.
    logging.basicConfig(level=logging.WARNING,
                        format="%(levelname)s %(name)s (parse process): %(message)s")
    # A daemon that is killed outright (kill -9, the OOM killer) cannot stop its parse
    # processes, and they would wait for work forever: each ends itself once it is orphaned.
    threading.Thread(target=_end_with, args=(daemon_pid,), name="parent-watch",
                     daemon=True).start()


def _end_with(daemon_pid: int) -> None:
    while os.getppid() == daemon_pid:
        time.sleep(1)
    os._exit(0)
