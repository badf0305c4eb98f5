"""The gateway's HTTP/1.1 protocol: uvicorn's h11 protocol with deadlines for reading requests.

uvicorn closes a connection that stays idle *between* requests (`timeout_keep_alive`), but has
no deadline for reading a request: a client that sends part of its headers, or part of its
body, and then stalls (or trickles a byte now and then) holds its connection, and whatever the
app has set aside for it, for as long as it likes. This subclass adds two deadlines:

- the request head (request line and headers) must arrive within `header_timeout_s`, counted
  from the connection's opening for the first request, and from the first byte of each later
  one (the idle wait in between stays uvicorn's keep-alive timeout); past it the connection is
  closed;
- the body must arrive whole within `body_timeout_s` of the end of the head; past it the client
  gets a `408` JSON error (when no response has started yet) and the connection is closed.

They are deadlines, not idle timeouts, so trickling does not extend them. Nothing is timed once
a request has been read: a response may stream for hours (Server-Sent Events).

When the app has answered before reading the whole body (a 413 from `app.limits`, a 401),
uvicorn reads the rest and discards it, to keep the connection for the next request, for as
long as the client sends. Here that stops after `discard_limit_bytes`: the connection is closed.
Reading a little first matters: closing a socket with unread data resets the connection, and
a client still sending (httpx does not read until it has sent the whole body) then sees the
reset instead of the answer; a body slightly over the limit gets its 413 cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

Phase = Literal["head", "body"]


class ReadDeadlineProtocol(H11Protocol):
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    discard_limit_bytes: int = 1024 * 1024

    _deadline: asyncio.TimerHandle | None = None
    _phase: Phase | None = None
    _discarded = 0

    # uvicorn's hooks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect("head")

    def data_received(self, data: bytes) -> None:
        if self._discarding():
            self._discarded += len(data)
            if self._discarded > self.discard_limit_bytes:
                self.transport.close()
                return
        super().data_received(data)
        # Bytes arrived and no request is complete yet: they are part of a request head.
        self._follow(head_started=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request may already be (partly) buffered.
        self._follow(head_started=bool(self.conn.trailing_data[0]))

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # deadlines -------------------------------------------------------------------------------

    def _discarding(self) -> bool:
        """Whether the app has answered and what arrives is the rest of an unread body."""
        cycle = self.cycle
        return (
            cycle is not None and cycle.response_complete and self.conn.their_state is h11.SEND_BODY
        )

    def _follow(self, *, head_started: bool) -> None:
        """Arm, keep or drop the deadline after h11 has consumed what arrived."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is not h11.SEND_BODY:
            self._discarded = 0
        if state is h11.SEND_BODY:
            self._expect("body")
        elif state is h11.IDLE:
            if head_started or self._phase == "head":
                self._expect("head")
            # else: idle between requests, which uvicorn's keep-alive timeout bounds.
        else:  # the request is read (or the connection is ending): nothing left to time
            self._disarm()

    def _expect(self, phase: Phase) -> None:
        if self._phase == phase:
            return  # a deadline, not an idle timeout: new bytes do not extend it
        self._disarm()
        self._phase = phase
        timeout = self.header_timeout_s if phase == "head" else self.body_timeout_s
        self._deadline = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = None

    def _expired(self) -> None:
        phase = self._phase
        self._deadline = None
        self._phase = None
        if self.transport.is_closing():
            return
        client = "{}:{}".format(*self.client) if self.client else "a client"
        if phase == "head":
            logger.info("%s: no request head in %ss; closing", client, self.header_timeout_s)
        else:
            logger.info("%s: no whole request body in %ss; closing", client, self.body_timeout_s)
            self._send_408()
        self.transport.close()

    def _send_408(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_started or self.conn.our_state is not h11.SEND_RESPONSE:
            return
        body = json.dumps(
            {
                "error": {
                    "code": "request_timeout",
                    "message": f"the request body did not arrive within {self.body_timeout_s} s",
                    "details": {"timeout_s": self.body_timeout_s},
                }
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (
                h11.Response(status_code=408, headers=headers, reason=b"Request Timeout"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:
            return
        # The app is waiting for the rest of the body: it now reads a disconnect, and whatever
        # it sends after this is dropped.
        cycle.response_started = True
        cycle.disconnected = True
        cycle.message_event.set()


def read_deadline_protocol(header_timeout_s: float, body_timeout_s: float) -> type[H11Protocol]:
    """The protocol class to pass as `uvicorn.Config(http=...)`, with these deadlines."""

    class Configured(ReadDeadlineProtocol):
        pass

    Configured.header_timeout_s = header_timeout_s
    Configured.body_timeout_s = body_timeout_s
    return Configured
