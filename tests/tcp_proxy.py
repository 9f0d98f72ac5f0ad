"""A small TCP proxy for fault tests: sits between the app and Postgres and can be cut."""

import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target. `cut()` drops every connection and then
    refuses new ones (or, with blackhole=True, accepts them and never answers);
    `partition()` is a network gone silent: the open connections stay open (their
    bytes are taken, and acknowledged, but go nowhere) and new ones are accepted and
    never answered; `restore()` drops every connection and forwards again."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "open"
        self.sockets = set()
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _track(self, *sockets):
        with self.lock:
            self.sockets.update(sockets)

    def _accept_loop(self):
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "refuse":
                client.close()
            elif self.mode == "blackhole":
                self._track(client)  # held open, never answered
            else:
                self._connect(client)

    def _connect(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._track(client, upstream)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                if self.mode == "open":  # partitioned: read, and dropped
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock):
        with self.lock:
            self.sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self, blackhole=False):
        """Drop every connection; refuse (or silently hold) new ones."""
        self.mode = "blackhole" if blackhole else "refuse"
        with self.lock:
            current = list(self.sockets)
        for sock in current:
            self._close(sock)

    def partition(self):
        """Forward nothing more, in either direction, and close nothing: open connections
        hang, new ones are accepted and never answered."""
        self.mode = "blackhole"

    def restore(self):
        """Drop every connection (what was sent meanwhile is lost); forward new ones."""
        self.cut()
        self.mode = "open"

    def close(self):
        """Stop listening and drop everything."""
        self.running = False
        self.cut()
        self.listener.close()
