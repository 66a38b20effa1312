"""Workspace stand-in: stands in for mAI (our Open WebUI fork) in the local stack and the
real-engine tests. It is NOT mAI. It honours only the part of Open WebUI's contract the hosting
stack relies on, plus a few endpoints that let tests load a container on purpose:

  GET  /health             200 {"status":true}             (the container's declared health check)
  GET  /health/db          200 when the database answers
  GET  /api/config         {"status":true,"name":$WEBUI_NAME}  (tells clients apart through the proxy)
  GET  /api/stats          row counts and the database's journal mode
  POST /api/signup?email=  adds a user: the first is 'admin', later ones 'pending' (as Open WebUI)
  POST /api/write          adds a chat row (body, if any, is its title)
  GET  /api/stream?events=N&interval_ms=M   Server-Sent Events, one flushed event each M ms
  GET  /ws, /ws/...        websocket echo (RFC 6455, text frames; ping/pong; close)
  POST /api/allocate?mb=N  allocates N MiB and holds it (touching every page)
  POST /api/free           releases what /api/allocate holds
  POST /api/burn?seconds=S&workers=W   W processes burn CPU for S seconds (answers at once)
  POST /api/upload?name=F  stores the body under $DATA_DIR/uploads/F

It answers like a server a proxy can keep connections to: HTTP/1.1 with keep-alive, every
answer with a Content-Length (or chunked), sent without Nagle's delay; HEAD wherever GET is;
404 for an unknown path and 405 for a known one with another method, as FastAPI does. Request
bodies may come with a Content-Length or chunked; what an endpoint leaves unread is discarded
before the next request on the connection.

State lives where Open WebUI keeps it: a SQLite database in WAL mode at $DATA_DIR/webui.db
(DATA_DIR defaults to /app/backend/data), with a `user` table (id, name, email, role,
created_at), a `chat` table, and a `heartbeat` table the server appends to every few seconds so
that backups always meet a database being written to.

Only the Python standard library is used. It logs the names of its environment variables at
start, never their values (WEBUI_SECRET_KEY and OPENAI_API_KEY are secrets).
"""

import base64
import hashlib
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT = int(os.environ.get("PORT", "8080"))
DATA_DIR = os.environ.get("DATA_DIR", "/app/backend/data")
DB_PATH = os.path.join(DATA_DIR, "webui.db")
UPLOAD_DIR = os.path.join(DATA_DIR, "uploads")
HEARTBEAT_SECONDS = float(os.environ.get("STANDIN_HEARTBEAT_SECONDS", "2"))
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(message):
    print(f"workspace-standin: {message}", file=sys.stderr, flush=True)


class Database:
    """One connection shared by all threads, serialised by a lock (SQLite allows one writer anyway)."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        with self.lock:
            # Backups (VACUUM INTO from another process) may hold the database for a moment.
            self.conn.execute("PRAGMA busy_timeout = 10000")
            self.journal_mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self.conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS user (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
                    role TEXT NOT NULL CHECK (role IN ('admin', 'user', 'pending')),
                    created_at INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS chat (
                    id TEXT PRIMARY KEY, user_id TEXT, title TEXT NOT NULL, created_at INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS heartbeat (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL);
                """
            )

    def execute(self, sql, params=()):
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def close(self):
        with self.lock:
            self.conn.close()


class Workspace:
    def __init__(self):
        os.makedirs(UPLOAD_DIR, exist_ok=True)
        self.db = Database(DB_PATH)
        self.held = []  # memory held by /api/allocate
        self.held_lock = threading.Lock()
        self.stopping = threading.Event()

    def heartbeat_loop(self):
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.db.execute("INSERT INTO heartbeat (at) VALUES (?)", (time.time(),))
            except sqlite3.Error as error:  # e.g. the file was swapped by a restore: keep serving
                log(f"heartbeat write failed: {error}")

    def stats(self):
        def count(table):
            return self.db.execute(f"SELECT count(*) FROM {table}")[0][0]

        return {
            "journal_mode": self.db.execute("PRAGMA journal_mode")[0][0],
            "users": count("user"),
            "chats": count("chat"),
            "heartbeats": count("heartbeat"),
            "held_mb": self.held_mb(),
        }

    def signup(self, email):
        with self.db.lock:
            first = self.db.conn.execute("SELECT count(*) FROM user").fetchone()[0] == 0
            role = "admin" if first else "pending"
            user_id = str(uuid.uuid4())
            self.db.conn.execute(
                "INSERT INTO user (id, name, email, role, created_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, email.split("@")[0], email, role, int(time.time())),
            )
        return {"id": user_id, "email": email, "role": role}

    def write_chat(self, title):
        chat_id = str(uuid.uuid4())
        self.db.execute(
            "INSERT INTO chat (id, user_id, title, created_at) VALUES (?, NULL, ?, ?)",
            (chat_id, title, int(time.time())),
        )
        return {"id": chat_id, "title": title}

    def allocate(self, mb):
        # Multiplying a bytes object writes every byte, so the pages are really resident.
        for _ in range(mb):
            block = b"\x01" * (1024 * 1024)
            with self.held_lock:
                self.held.append(block)
        return self.held_mb()

    def free(self):
        with self.held_lock:
            self.held.clear()

    def held_mb(self):
        with self.held_lock:
            return len(self.held)

    def burn(self, seconds, workers):
        # Processes, not threads: one Python process can keep only one CPU busy.
        code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"
        for _ in range(workers):
            process = subprocess.Popen([sys.executable, "-c", code])
            threading.Thread(target=process.wait, daemon=True).start()


_date = (0, "")


def http_date():
    """The Date field's value, formatted once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


MAX_HEADER_LINE = 65536
MAX_HEADER_FIELDS = 100


class Headers(dict):
    """A request's header fields by lower-case name; a repeated field's values joined by commas."""

    def add(self, name, value):
        key = name.lower()
        self[key] = f"{self[key]}, {value}" if key in self else value

    def get(self, name, default=None):
        return super().get(name.lower(), default)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the proxy's upstream connections expect
    server_version = "mai-workspace-standin/1"
    # A response is written in pieces (status line, headers, body): with Nagle's algorithm on, the
    # second piece waits for the peer's delayed ACK, 40 ms per request on Linux.
    disable_nagle_algorithm = True
    # Buffered: the pieces of a response leave in one segment when the request is done (streams,
    # websockets and "100 Continue" flush on their own).
    wbufsize = -1
    workspace = None  # set in main()

    def version_string(self):
        return self.server_version  # without "Python/3.x"

    def log_message(self, format, *args):
        # `path` is unset when the request line itself was malformed.
        if not getattr(self, "path", "").startswith("/health"):
            log(f"{self.address_string()} {format % args}")

    def parse_request(self):
        """Reads the request line and header fields, as the standard library's parse_request
        does, but with a plain header parser: its e-mail parser costs most of a request's CPU."""
        self.command = None
        self.request_version = "HTTP/1.0"  # what an error answer before the version is known says
        self.close_connection = True
        self.requestline = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        version = words[2][5:].split(".") if len(words) == 3 and words[2].startswith("HTTP/") else []
        if len(version) != 2 or not all(part.isdigit() and len(part) <= 2 for part in version):
            self.send_error(400, f"Bad request line {self.requestline!r}")
            return False
        if version[0] != "1":
            self.send_error(505, f"Invalid HTTP version ({words[2]})")
            return False
        self.command, self.path, self.request_version = words
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")  # a path, not a network location
        headers = Headers()
        for fields in range(MAX_HEADER_FIELDS + 1):
            line = self.rfile.readline(MAX_HEADER_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            if len(line) > MAX_HEADER_LINE or fields == MAX_HEADER_FIELDS:
                self.send_error(431, "Request header fields too large")
                return False
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon or not name or name != name.strip():
                self.send_error(400, "Bad header field")
                return False
            headers.add(name, value.strip())
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        if "close" in connection:
            self.close_connection = True
        elif version[1] != "0" or "keep-alive" in connection:
            self.close_connection = False
        if headers.get("Expect", "").lower() == "100-continue" and version[1] != "0":
            return self.handle_expect_100()
        return True

    def handle_expect_100(self):
        answered = super().handle_expect_100()
        self.wfile.flush()  # the client waits for it before sending the body
        return answered

    # -- helpers --
    def query(self):
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}

    def int_param(self, name, default, lowest, highest):
        raw = self.query().get(name)
        if raw is None:
            return default
        value = int(raw)
        if not lowest <= value <= highest:
            raise ValueError(f"{name} must be between {lowest} and {highest}")
        return value

    def send_json(self, status, body, headers=()):
        """One JSON answer, composed here rather than field by field through send_header: this
        is every request's path, and the generic one costs about as much as parsing the request."""
        data = json.dumps(body, separators=(",", ":")).encode()  # compact, as FastAPI answers
        self.log_request(status)
        head = (
            f"{self.protocol_version} {status} {self.responses[status][0]}\r\n"
            f"Server: {self.server_version}\r\nDate: {http_date()}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers)
            + "\r\n"
        ).encode("latin-1")
        # HEAD: the same header fields, no body.
        self.wfile.write(head if self.command == "HEAD" else head + data)

    def body_chunks(self):
        """The request body piece by piece, sent with a Content-Length or chunked (read once)."""
        if self.body_state != "unread":
            return
        self.body_state = "reading"
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    self.body_state = "read"
                    return
                yield self.rfile.read(size)
                self.rfile.readline()  # CRLF after each chunk
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
        self.body_state = "read"

    def read_body(self):
        return b"".join(self.body_chunks())

    def discard_unread_body(self):
        """Reads what an endpoint left of the request body, so the next request on the
        connection starts where it should; a body that cannot be read ends the connection."""
        if self.close_connection or self.body_state == "read":
            return
        if self.body_state == "unread":
            try:
                for _ in self.body_chunks():
                    pass
            except (ValueError, OSError):
                pass
        if self.body_state != "read":  # an endpoint stopped halfway, or the framing was broken
            self.close_connection = True

    # -- routing --
    # Path -> method -> handler name. HEAD is answered wherever GET is.
    ROUTES = {
        "/health": {"GET": "get_health"},
        "/health/db": {"GET": "get_health_db"},
        "/api/config": {"GET": "get_config"},
        "/api/stats": {"GET": "get_stats"},
        "/api/stream": {"GET": "stream_events"},
        "/ws": {"GET": "websocket_echo"},
        "/api/signup": {"POST": "post_signup"},
        "/api/write": {"POST": "post_write"},
        "/api/allocate": {"POST": "post_allocate"},
        "/api/free": {"POST": "post_free"},
        "/api/burn": {"POST": "post_burn"},
        "/api/upload": {"POST": "upload"},
    }

    def do_GET(self):
        self.route()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def route(self):
        self.body_state = "unread"
        path = urlsplit(self.path).path
        if path.startswith("/ws/"):
            path = "/ws"  # Open WebUI's /ws/socket.io/ and the like
        methods = self.ROUTES.get(path)
        name = methods and methods.get("GET" if self.command == "HEAD" else self.command)
        try:
            if methods is None:
                self.send_json(404, {"detail": "Not Found"})
            elif name is None:
                allowed = ", ".join(sorted({*methods, *(["HEAD"] if "GET" in methods else [])}))
                self.send_json(405, {"detail": "Method Not Allowed"}, [("Allow", allowed)])
            else:
                getattr(self, name)()
        except ValueError as error:
            self.send_json(400, {"detail": str(error)})
        except sqlite3.Error as error:
            self.send_json(500, {"detail": f"database: {error}"})
        self.discard_unread_body()

    # -- endpoints --
    def get_health(self):
        self.send_json(200, {"status": True})

    def get_health_db(self):
        self.workspace.db.execute("SELECT 1")
        self.send_json(200, {"status": True})

    def get_config(self):
        self.send_json(200, {"status": True, "name": os.environ.get("WEBUI_NAME", "mAI stand-in")})

    def get_stats(self):
        self.send_json(200, self.workspace.stats())

    def post_signup(self):
        self.read_body()
        email = self.query().get("email")
        if not email or "@" not in email:
            self.send_json(400, {"detail": "email=<address> is required"})
        else:
            self.send_json(200, self.workspace.signup(email))

    def post_write(self):
        title = self.read_body().decode("utf-8", "replace") or "chat"
        self.send_json(200, self.workspace.write_chat(title))

    def post_allocate(self):
        self.read_body()
        mb = self.int_param("mb", 64, 1, 65536)
        self.send_json(200, {"held_mb": self.workspace.allocate(mb)})

    def post_free(self):
        self.read_body()
        self.workspace.free()
        self.send_json(200, {"held_mb": 0})

    def post_burn(self):
        self.read_body()
        seconds = self.int_param("seconds", 10, 1, 3600)
        workers = self.int_param("workers", 1, 1, 64)
        self.workspace.burn(seconds, workers)
        self.send_json(202, {"seconds": seconds, "workers": workers})

    # -- endpoints with their own framing --
    def stream_events(self):
        events = self.int_param("events", 5, 1, 10000)
        interval = self.int_param("interval_ms", 100, 0, 60000) / 1000
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        for index in range(events):
            if index:
                time.sleep(interval)
            self.write_chunk(f"data: {json.dumps({'index': index, 'at': time.time()})}\n\n".encode())
        self.write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def upload(self):
        name = os.path.basename(self.query().get("name") or str(uuid.uuid4()))
        if name in ("", ".", ".."):
            raise ValueError("name must be a plain file name")
        written = 0
        with open(os.path.join(UPLOAD_DIR, name), "wb") as out:
            for chunk in self.body_chunks():
                out.write(chunk)
                written += len(chunk)
        self.send_json(200, {"name": name, "bytes": written})

    def websocket_echo(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if self.command != "GET" or self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            self.send_json(400, {"detail": "websocket upgrade expected"})
            return
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            frame = self.read_frame()
            if frame is None:
                return
            opcode, payload = frame
            if opcode in (0x1, 0x2):  # text, binary: echo as is
                self.write_frame(opcode, payload)
            elif opcode == 0x9:  # ping
                self.write_frame(0xA, payload)
            elif opcode == 0x8:  # close: answer with the same status, then end
                self.write_frame(0x8, payload[:2])
                return

    def read_exact(self, count):
        data = self.rfile.read(count)
        return data if len(data) == count else None

    def read_frame(self):
        """One client frame (clients always mask); None when the connection ends."""
        header = self.read_exact(2)
        if header is None:
            return None
        opcode, length = header[0] & 0x0F, header[1] & 0x7F
        if length == 126:
            extended = self.read_exact(2)
            length = struct.unpack(">H", extended)[0] if extended else None
        elif length == 127:
            extended = self.read_exact(8)
            length = struct.unpack(">Q", extended)[0] if extended else None
        if length is None:
            return None
        mask = self.read_exact(4) if header[1] & 0x80 else b"\0\0\0\0"
        payload = self.read_exact(length) if length else b""
        if mask is None or payload is None:
            return None
        return opcode, bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))

    def write_frame(self, opcode, payload):
        length = len(payload)
        if length < 126:
            header = struct.pack(">BB", 0x80 | opcode, length)
        elif length < 65536:
            header = struct.pack(">BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack(">BBQ", 0x80 | opcode, 127, length)
        self.wfile.write(header + payload)
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections of a burst (a proxy opening many at once), and a
    # dropped SYN costs the client a one-second retransmission.
    request_queue_size = 128


def main():
    # Names only: values include secrets (WEBUI_SECRET_KEY, OPENAI_API_KEY).
    log(f"environment (names only): {', '.join(sorted(os.environ))}")
    workspace = Workspace()
    Handler.workspace = workspace
    log(f"database {DB_PATH} (journal_mode={workspace.db.journal_mode})")
    threading.Thread(target=workspace.heartbeat_loop, daemon=True).start()

    server = Server(("0.0.0.0", PORT), Handler)

    # As PID 1 a process ignores SIGTERM unless it handles it: stop promptly on `docker stop`.
    def stop(signum, _frame):
        log(f"signal {signum}: stopping")
        workspace.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"listening on 0.0.0.0:{PORT}")
    server.serve_forever()
    server.server_close()
    workspace.db.close()  # the last connection to close checkpoints the WAL
    log("stopped")


if __name__ == "__main__":
    main()
