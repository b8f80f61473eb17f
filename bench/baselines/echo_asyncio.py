#!/usr/bin/env python3
"""echo_asyncio — the echo server users would write in Python instead: asyncio with protocols (faster
than streams), or the same code on uvloop with --uvloop (Debian: python3-uvloop).

    /usr/bin/python3 echo_asyncio.py --port P [--host H] [--uvloop]

Prints "ready" once listening; stops on SIGTERM/SIGINT. Writes back what it receives; when the
transport's buffer fills (pause_writing), it stops reading until it drains.
"""
import argparse
import asyncio
import signal
import socket
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


class BufferedEcho(Echo, asyncio.BufferedProtocol):
    """Receives into one buffer per connection (recv_into) instead of a new bytes object per read."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self.view = memoryview(bytearray(64 * 1024))

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        self.transport.write(self.view[:nbytes])  # the transport copies whatever it cannot send at once


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's own loop")
    ap.add_argument("--protocol", choices=["plain", "buffered"], default="buffered",
                    help="asyncio.Protocol, or asyncio.BufferedProtocol (default)")
    a = ap.parse_args()
    if a.uvloop:
        try:
            import uvloop
        except ImportError:
            sys.exit("echo_asyncio: uvloop is not installed (apt-get install python3-uvloop)")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(BufferedEcho if a.protocol == "buffered" else Echo, a.host, a.port, backlog=4096,
                           reuse_address=True))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


if __name__ == "__main__":
    main()
