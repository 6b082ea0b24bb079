"""The worker service: registers, heartbeats, takes dispatched executions and runs them.

Start-up (docs/packs.md): choose the runtimes, register (upsert by name), declare this
worker's queues, start the heartbeat and the consumers at once; runtime-version verification and
pack environments are prepared in the background, so taking work is never delayed by them (an
execution that needs an environment still being built waits on that environment's lock).

Queues: ``worker.{id}.executions`` (dispatches), ``worker.{id}.control`` (cancel requests) and
``worker.{id}.packs`` (``pack.registered`` → set up that pack's environments).
A dispatch committed by this process's executor while a slot is free is handed over directly
(:meth:`WorkerService.take`; docs/performance.md, "Hand-off to a local worker").

Restart (docs/operations.md "Guarantees"): a worker that starts under a name that already has a
row takes back what its previous process left: the action processes still carrying that
process's token are killed, never-started executions are rescheduled and running ones end
``abandoned`` (retried per the action's retry policy). A watchdog process kills this process's
actions if it dies (:mod:`attune.worker.watchdog`).

Runtimes: when the runtime table changes (a pack registered after the worker started), the
worker detects its runtimes again and publishes them with the next heartbeat.

Stop: the worker turns inactive (no new work is scheduled here) but keeps heartbeating while it
drains, stops taking dispatches, waits up to ``shutdown_timeout`` for running executions and then
cancels the rest (they end ``cancelled``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import subprocess
from collections.abc import Coroutine, Mapping
from typing import Any

from attune.bus.base import Consumer, Retryable
from attune.db.repos import action_inputs
from attune.db.repos import packs as packs_repo
from attune.messaging import topology
from attune.messaging.messages import Envelope, ExecutionCancel, ExecutionDispatch, PackRegistered
from attune.operations.orphans import take_back
from attune.platform import Platform
from attune.worker import environments, registration, watchdog
from attune.worker.run_execution import cancel_orphan, run_execution

log = logging.getLogger(__name__)

#: Dispatches prefetched beyond the concurrency limit, so the next one is ready when a slot frees.
EXTRA_PREFETCH = 2
PACK_PREFETCH = 5
CONTROL_PREFETCH = 10
#: How long cancelled executions get to finish writing their status at the end of a shutdown.
CANCEL_GRACE_SECONDS = 10.0


class WorkerService:
    """Runs actions dispatched to this worker (one ``worker`` row, role ``action``)."""

    name = "worker"

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self.worker_id: int | None = None
        #: Set once the worker is registered and consuming (tests and embedders wait on it).
        self.ready = asyncio.Event()
        self.runtimes: list[str] = []
        self._running: dict[int, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._draining = asyncio.Event()
        self._slots: asyncio.Semaphore | None = None
        self._platform: Platform | None = None
        #: This process's token: the prefix of every action's ``ATTUNE_PROCESS_COOKIE``.
        self.boot = secrets.token_hex(8)
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._runtime_rows: tuple[int, ...] | None = None
        self._refresh_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, platform: Platform, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down gracefully."""
        settings = platform.settings
        self._platform = platform
        self._draining = asyncio.Event()
        self.ready.clear()
        self._slots = asyncio.Semaphore(max(1, settings.worker.max_concurrent_tasks))
        self._runtime_rows = await registration.runtime_rows_key(platform.db)
        self.runtimes = await registration.choose_runtimes(platform.db, settings, self._environ)
        caps = registration.capabilities(settings, self.runtimes)
        worker_id, previous_boot = await registration.register(
            platform.db, settings, caps, boot=self.boot, now=platform.clock.now()
        )
        self.worker_id = worker_id
        heartbeat_stop = asyncio.Event()
        # Beat from registration on: taking back a predecessor's work queues for the database
        # writer behind whatever a restart recovers, and a silent worker would meanwhile be
        # declared dead by the liveness monitor (its new runs rescheduled, then failed).
        heartbeat = asyncio.create_task(
            registration.heartbeat_loop(
                platform.db,
                worker_id,
                settings.worker.heartbeat_interval,
                heartbeat_stop,
                clock=platform.clock,
                draining=self._draining,
                after_beat=self._refresh_runtimes_if_changed,
            ),
            name=f"worker-{worker_id}-heartbeat",
        )
        consumers: list[Consumer] = []
        try:
            if previous_boot is not None:
                killed = await asyncio.to_thread(watchdog.kill_all, f"{previous_boot}:")
                if killed:
                    log.warning("killed %d action process(es) left by this worker's previous process", killed)
            self._start_watchdog()
            # Before consuming: whatever is busy on this worker now belongs to a dead predecessor.
            await take_back(platform.db, worker_id, box=platform.secrets)
            platform.local_workers.add(worker_id)

            executions_queue = topology.worker_execution_queue(worker_id)
            control_queue = topology.worker_control_queue(worker_id)
            packs_queue = topology.worker_pack_queue(worker_id)
            for spec in (executions_queue, control_queue, packs_queue):
                await platform.bus.declare_queue(spec)
            self._spawn_background(self._start_up_background(), name="worker-startup-setup")
            consumers.append(
                await platform.bus.consume(control_queue.name, self._on_control, prefetch=CONTROL_PREFETCH)
            )
            consumers.append(
                await platform.bus.consume(packs_queue.name, self._on_pack, prefetch=PACK_PREFETCH)
            )
            executions = await platform.bus.consume(
                executions_queue.name,
                self._on_dispatch,
                prefetch=settings.worker.max_concurrent_tasks + EXTRA_PREFETCH,
            )
            consumers.insert(0, executions)
            platform.local_handoff[worker_id] = self
            self.ready.set()
            log.info(
                "worker %s (id %s) is taking work for %s", settings.worker.name, worker_id, self.runtimes
            )
            await stop.wait()
        finally:
            await self._shutdown(platform, worker_id, consumers, heartbeat_stop, heartbeat)

    async def _shutdown(
        self,
        platform: Platform,
        worker_id: int,
        consumers: list[Consumer],
        heartbeat_stop: asyncio.Event,
        heartbeat: asyncio.Task[None],
    ) -> None:
        self._draining.set()
        platform.local_handoff.pop(worker_id, None)
        try:
            await self._set_inactive(platform, worker_id)
            # The dispatch consumer goes first: nothing new starts while running work drains.
            if consumers:
                await consumers[0].cancel()
            if self._tasks:
                timeout = platform.settings.worker.shutdown_timeout
                _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
                if pending:
                    log.warning("cancelling %d execution(s) still running at shutdown", len(pending))
                    for event in self._running.values():
                        event.set()
                    _, stuck = await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
                    for task in stuck:
                        task.cancel()
            for consumer in consumers[1:]:
                await consumer.cancel()
        finally:
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            heartbeat_stop.set()
            await asyncio.gather(heartbeat, return_exceptions=True)
            platform.local_workers.discard(worker_id)
            await self._set_inactive(platform, worker_id)
            await self._stop_watchdog()
            log.info("worker %s stopped", worker_id)

    def _start_watchdog(self) -> None:
        """Start the process that kills this worker's actions once this process is gone."""
        try:
            self._watchdog = subprocess.Popen(
                watchdog.command(self.boot),
                stdin=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("cannot start the action watchdog (%s); actions may outlive a crash", exc)

    async def _stop_watchdog(self) -> None:
        """Closing its pipe makes the watchdog kill what is left of our actions and exit."""
        process, self._watchdog = self._watchdog, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)

    async def _refresh_runtimes_if_changed(self) -> None:
        """Heartbeat hook: detect the runtimes again when the runtime table changed."""
        platform = self._platform
        if platform is None:
            return
        try:
            rows = await registration.runtime_rows_key(platform.db)
            if rows != self._runtime_rows:
                await self.refresh_runtimes(rows)
        except Exception:
            log.exception("refreshing the worker's runtimes failed")

    async def refresh_runtimes(self, rows: tuple[int, ...] | None = None) -> list[str]:
        """Detect the runtimes again; publish them (and verify their versions) when they changed."""
        platform = self._platform
        assert platform is not None and self.worker_id is not None
        async with self._refresh_lock:
            self._runtime_rows = (
                rows if rows is not None else await registration.runtime_rows_key(platform.db)
            )
            found = await registration.choose_runtimes(platform.db, platform.settings, self._environ)
            if found == self.runtimes:
                return found
            self.runtimes = found
            caps = registration.capabilities(platform.settings, found)
            await registration.update_capabilities(platform.db, self.worker_id, caps)
            log.info("worker %s now serves runtimes %s", self.worker_id, found)
        # In the background: verification runs commands, and the heartbeat must not wait for them.
        self._spawn_background(self._verify_versions(found), name="worker-verify-versions")
        return found

    async def _verify_versions(self, runtimes: list[str]) -> None:
        platform = self._platform
        assert platform is not None
        try:
            report = await registration.verify_versions(platform.db, runtimes)
            if report:
                log.info("runtime versions verified: %s", report)
        except Exception:
            log.exception("runtime version verification failed")

    @staticmethod
    async def _set_inactive(platform: Platform, worker_id: int) -> None:
        try:
            await registration.set_inactive(platform.db, worker_id)
        except Exception:
            log.exception("cannot mark worker %s inactive", worker_id)

    # ------------------------------------------------------------------ dispatches

    async def _on_dispatch(self, envelope: Envelope) -> None:
        """Take one dispatch: wait for a free slot, start the run in the background, then ack."""
        dispatch = envelope.payload_as(ExecutionDispatch)
        if dispatch.worker_id != self.worker_id:
            log.warning(
                "ignoring dispatch of execution %s meant for worker %s",
                dispatch.execution_id,
                dispatch.worker_id,
            )
            return
        if dispatch.execution_id in self._running:
            log.info(
                "execution %s is already running here; ignoring the duplicate dispatch", dispatch.execution_id
            )
            return
        if not await self._acquire_slot():
            # Stopping: hand the message back so this worker (after a restart) or the TTL handles it.
            raise Retryable("worker is shutting down")
        if dispatch.execution_id in self._running:
            self._release_slot()
            return
        cancel = asyncio.Event()
        self._running[dispatch.execution_id] = cancel
        task = asyncio.create_task(
            self._run_one(dispatch.execution_id, cancel), name=f"execution-{dispatch.execution_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ hand-off (LocalWorker)

    def has_free_slot(self) -> bool:
        """Whether a run handed over now starts at once (``Platform.stage_handoff`` asks)."""
        return self._slots is not None and not self._slots.locked() and not self._draining.is_set()

    def take(self, execution_id: int, message_id: str) -> bool:
        """Run a dispatch committed in this process, without the bus (docs/performance.md,
        "Hand-off to a local worker"); the claim deletes its outbox row ``message_id``.

        False while stopping: the row stays and the relay sends it at the next start.
        """
        if self._draining.is_set() or self._platform is None:
            return False
        if execution_id in self._running:
            return True  # a redelivered dispatch got here first; its run claims it once
        cancel = asyncio.Event()
        self._running[execution_id] = cancel
        task = asyncio.create_task(
            self._run_handed_off(execution_id, message_id, cancel), name=f"execution-{execution_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run_handed_off(self, execution_id: int, message_id: str, cancel: asyncio.Event) -> None:
        # Another run may have taken the free slot between the decision and the commit.
        if not await self._acquire_slot():
            # Stopping: the outbox row stays, and the next start re-sends it.
            if self._running.get(execution_id) is cancel:
                del self._running[execution_id]
            return
        await self._run_one(execution_id, cancel, handed_off=message_id)

    async def _run_one(
        self, execution_id: int, cancel: asyncio.Event, *, handed_off: str | None = None
    ) -> None:
        assert self._platform is not None and self.worker_id is not None
        try:
            status = await run_execution(
                self._platform,
                self.worker_id,
                execution_id,
                cancel,
                cookie_prefix=self.boot,
                background=self._background,
                handed_off=handed_off,
            )
            if status is None and cancel.is_set():
                # Cancelled before it was claimed: settle the ``canceling`` run nothing runs.
                await cancel_orphan(self._platform.db, execution_id, self.worker_id)
        except Exception:
            log.exception("execution %s crashed the worker task", execution_id)
        finally:
            self._running.pop(execution_id, None)
            self._release_slot()

    async def _acquire_slot(self) -> bool:
        """Wait for a concurrency permit; False when the worker started draining meanwhile."""
        assert self._slots is not None
        if self._draining.is_set():
            return False
        acquire = asyncio.ensure_future(self._slots.acquire())
        drained = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait({acquire, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            if not acquire.done():
                acquire.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquire
        if acquire.cancelled():
            return False
        if self._draining.is_set():
            self._slots.release()
            return False
        return True

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    # ------------------------------------------------------------------ control

    async def _on_control(self, envelope: Envelope) -> None:
        """A cancel request: kill the local process, or settle an execution nothing runs here."""
        request = envelope.payload_as(ExecutionCancel)
        if request.worker_id != self.worker_id:
            return
        event = self._running.get(request.execution_id)
        if event is not None:
            log.info("cancelling execution %s", request.execution_id)
            event.set()
            return
        assert self._platform is not None and self.worker_id is not None
        await cancel_orphan(self._platform.db, request.execution_id, self.worker_id)

    # ------------------------------------------------------------------ environments

    async def _on_pack(self, envelope: Envelope) -> None:
        """``pack.registered``: build that pack's environments in the background; always ack."""
        message = envelope.payload_as(PackRegistered)
        names = {name.lower() for name in message.runtime_names}
        # The pack may have brought runtimes this worker had not heard of when it started.
        await self._refresh_runtimes_if_changed()
        self._spawn_background(
            self._prepare_pack(message.pack_ref, names or None), name=f"pack-env-{message.pack_ref}"
        )

    async def _start_up_background(self) -> None:
        """Verify runtime versions, then prepare the environments of every registered pack."""
        platform = self._platform
        assert platform is not None
        try:
            report = await registration.verify_versions(platform.db, self.runtimes)
            if report:
                log.info("runtime versions verified: %s", report)
        except Exception:
            log.exception("runtime version verification failed")
        async with platform.db.session() as session:
            pack_refs = await action_inputs.pack_refs(session)
        for pack_ref in pack_refs:
            await self._prepare_pack(pack_ref, None)

    async def _prepare_pack(self, pack_ref: str, only: set[str] | None) -> None:
        """Set up the base and per-version environments a pack's actions need (docs/packs.md).

        ``only`` limits the runtimes to those lower-case names. Errors are logged, never raised.
        """
        platform = self._platform
        assert platform is not None
        settings = platform.settings
        async with platform.db.session() as session:
            pack_dir = await packs_repo.directory_of(session, settings, pack_ref)
        if not pack_dir.is_dir():
            if only is not None:
                log.error("pack %s has no directory %s; no environments prepared", pack_ref, pack_dir)
            return
        try:
            async with platform.db.session() as session:
                rows = list(await action_inputs.runtimes_of_pack(session, pack_ref))
                version_rows = {
                    row.id: list(await action_inputs.available_versions_of(session, row.id)) for row in rows
                }
        except Exception:
            log.exception("cannot read the runtimes of pack %s", pack_ref)
            return
        for row in rows:
            if only is not None and row.name.lower() not in only:
                continue
            if not registration.serves(self.runtimes, row, row.ref):
                continue
            targets: list[tuple[str | None, dict[str, Any]]] = [(None, dict(row.execution_config or {}))]
            targets += [
                (version.version, dict(version.execution_config or {})) for version in version_rows[row.id]
            ]
            for version, config in targets:
                if not environments.needs_environment(config, pack_dir):
                    continue
                env_dir = environments.env_dir_for(settings.envs_dir, pack_ref, row.name.lower(), version)
                try:
                    report = await environments.ensure_environment(pack_dir, env_dir, config)
                    if report.error:
                        log.warning("environment %s for pack %s: %s", env_dir, pack_ref, report.error)
                    else:
                        log.info("environment %s for pack %s is ready", env_dir, pack_ref)
                except Exception:
                    log.exception("setting up environment %s for pack %s failed", env_dir, pack_ref)

    def _spawn_background(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
