"""The control socket: JSON lines over a Unix socket under /run/noded/ (noded.contract.protocol)."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from noded.contract.protocol import (
    MAX_LINE,
    ErrorInfo,
    Event,
    Reply,
    Request,
    SessionInfo,
    decode_request,
    encode,
    request_id,
)
from noded.daemon.config import Config
from noded.daemon.owners import ROOT, Peer, peer_of
from noded.errors import NodedError

log = logging.getLogger("noded.control")

WATCH_QUEUE = 1000  # events buffered for one slow watcher before it is dropped

Handler = Callable[[Request, "Connection"], Awaitable[Any]]


class Connection:
    """One client: replies and events go out through one queue, in order."""

    def __init__(self, writer: asyncio.StreamWriter, peer: Peer = ROOT) -> None:
        self.writer = writer
        self.peer = peer  # who connected (SO_PEERCRED): what it may do, noded.daemon.owners
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(WATCH_QUEUE)
        self.watching: set[str | None] = set()  # session ids; None means all

    def send(self, obj: Any) -> None:
        try:
            self.queue.put_nowait(encode(obj))
        except asyncio.QueueFull:
            log.warning("dropping a watcher that does not read its events")
            self.close()

    def on_session(self, info: SessionInfo) -> None:
        if None in self.watching or info.sid in self.watching:
            self.send(Event(session=info))

    def close(self) -> None:
        self.watching.clear()
        self.writer.close()

    async def pump(self) -> None:
        while (data := await self.queue.get()) is not None:
            self.writer.write(data)
            await self.writer.drain()


class ControlServer:
    def __init__(
        self,
        config: Config,
        handler: Handler,
        on_connect: Callable[[Connection], None],
        on_disconnect: Callable[[Connection], None],
    ) -> None:
        self.config = config
        self.handler = handler
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        path = self.config.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=MAX_LINE)
        try:
            gid = grp.getgrnam(self.config.socket_group).gr_gid
            os.chown(path, 0, gid)
            os.chmod(path, 0o660)
        except KeyError:
            log.warning("group %r does not exist: the control socket is for root only", self.config.socket_group)
            os.chmod(path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            self._server = None
        try:
            self.config.socket_path.unlink()
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        conn = Connection(writer, peer_of(writer.get_extra_info("socket")))
        pump = asyncio.get_running_loop().create_task(conn.pump())
        self.on_connect(conn)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    conn.send(
                        Reply(
                            id=0,
                            ok=False,
                            error=ErrorInfo(code="bad_request", message=f"request longer than {MAX_LINE} bytes"),
                        )
                    )
                    break
                except asyncio.IncompleteReadError:
                    break
                conn.send(await self._answer(line, conn))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.on_disconnect(conn)
            if not conn.queue.full():
                conn.queue.put_nowait(None)  # ends the pump once it has written the rest
            try:
                await asyncio.wait_for(pump, 2.0)
            except (Exception, asyncio.CancelledError):
                pump.cancel()
            writer.close()
            self._connections.discard(task)

    async def _answer(self, line: bytes, conn: Connection) -> Reply:
        req_id = 0
        try:
            req_id = request_id(line)  # also for the error reply of a malformed request
            req = decode_request(line)  # BadRequest saying what is wrong
            req_id = req.id
            result = await self.handler(req, conn)
            return Reply(id=req_id, ok=True, result=result)
        except NodedError as exc:
            return Reply(id=req_id, ok=False, error=ErrorInfo(code=exc.code, message=exc.message, hint=exc.hint))
        except Exception as exc:  # never let one request take the daemon down
            log.exception("request failed")
            return Reply(id=req_id, ok=False, error=ErrorInfo(code="internal", message=f"internal error: {exc!r}"))
