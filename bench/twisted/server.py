#!/usr/bin/python3
"""A Twisted server of hark's line protocol, version 1, and its publish API.

It exists for one purpose: to let `hark bench --v1` compare hark's server
with a competent Twisted implementation of the same server on the same run
(issue 6). It is a *comparison* server, not a replacement for `hark serve`:

- The store is in memory only. Nothing is durable: items are gone when the
  process exits, and a publish is answered without touching a disk (hark
  serve answers only once the item is on disk, so this server is spared
  two fsyncs per publish; bear that in mind when comparing publish-side
  latencies).
- Only version 1 is spoken: no `hello`/`seen` identification. Those lines
  get `ERR unknown command`, as docs/PROTOCOL.md says a version-1 server
  may answer.
- Ads are kept by count only (the newest --keep-ads), not by age.

Everything else follows docs/PROTOCOL.md: `random?`, `classified?` (per
connection read position), `notif` (OK, then the announcements: one
`notif: classified` per unread ad, then `notif: random` if a number was
published since the connection's last `random?`), `stop_notif`, the pushes,
`ERR unknown command`, CRLF lines (a bare LF accepted), the 4096-byte line
limit (`ERR line too long`, then close), the idle timeout of notification
mode, `ERR too many connections`, and dropping clients that do not read
(more than 64 KiB of pushes queued, or a send buffer that stays full for
the write timeout). The HTTP API serves the same paths and answers as
server/http.go: POST /v1/random, POST /v1/classified, GET /v1/health.

It is one process and one thread: the reactor (epoll on Linux) drives every
connection; a publish writes one push into each subscriber's transport
buffer and returns. No threads, and no timer per connection (the idle
timeout is checked when an item is fanned out, as hark serve does; a timer
exists only while a client's send buffer is full).

Run it with the system Python that has Twisted (Debian: apt-get install -y
python3-twisted):

    /usr/bin/python3 bench/twisted/server.py --listen 127.0.0.1:6789 --http 127.0.0.1:6790

See README.md next to this file for the benchmark commands.
"""

import argparse
import json
import re
import resource
import secrets
import sys
import time
from bisect import bisect_right

from zope.interface import implementer

from twisted.internet import protocol, reactor
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.protocols.basic import LineReceiver
from twisted.web import resource as web_resource
from twisted.web import server as web_server

log = Logger()

# ---------------------------------------------------------------------------
# Wire vocabulary (wire/wire.go)

MAX_LINE = 4096  # bytes, without the terminator
MAX_AD_BYTES = 1000
MAX_RANDOM = (1 << 64) - 1

CRLF = b"\r\n"
OK = b"OK\r\n"
NOTIF_RANDOM = b"notif: random\r\n"
NOTIF_CLASSIFIED = b"notif: classified\r\n"
ERR_UNKNOWN_COMMAND = b"ERR unknown command\r\n"
ERR_LINE_TOO_LONG = b"ERR line too long\r\n"
ERR_TOO_MANY_CONNS = b"ERR too many connections\r\n"

KIND_RANDOM = "random"
KIND_CLASSIFIED = "classified"

# Defaults, as hark serve's.
DEFAULT_LISTEN = "127.0.0.1:6789"
DEFAULT_HTTP = "127.0.0.1:6790"
DEFAULT_IDLE_TIMEOUT = 30 * 60.0  # seconds
DEFAULT_WRITE_TIMEOUT = 10.0  # seconds
DEFAULT_MAX_CONNS = 10000
DEFAULT_KEEP_ADS = 10000
MAX_QUEUE = 64 << 10  # bytes of pushes queued for a client that does not read
MAX_BODY = 64 << 10  # publish API request body

_monotonic = time.monotonic


# ---------------------------------------------------------------------------
# The line protocol


@implementer(IHalfCloseableProtocol)
class NotifProtocol(LineReceiver):
    """One client connection.

    The delimiter is LF; one CR before it is stripped in lineReceived, so
    CRLF and bare LF both end a line and any other CR is part of the line.
    MAX_LENGTH allows for that CR; a line over 4096 bytes without it is
    caught in lineReceived.

    The protocol registers itself as the transport's streaming producer:
    when more than 64 KiB wait in the transport's buffer (the kernel's send
    buffer being full), LineReceiver stops reading and parsing commands
    until the client has read its replies, and a timer drops the client if
    that lasts the write timeout. Pushes while paused are counted: over
    64 KiB of them and the client is dropped.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE + 1

    # Per-connection state (notification mode is membership of Hub.subs).
    refused = False
    ad_pos = 0  # id of the last ad read
    random_pos = 0  # id of the random number last fetched
    last_line = 0.0  # monotonic time of the last line received
    paused_pushes = 0  # push bytes queued since the transport paused us
    slow_timer = None

    def connectionMade(self):
        f = self.factory
        if len(f.conns) >= f.max_conns:
            self.refused = True
            log.warn("connection refused: too many connections")
            self.transport.write(ERR_TOO_MANY_CONNS)
            self.transport.loseConnection()
            return
        f.conns.add(self)
        t = self.transport
        # Go sets TCP_NODELAY on every TCP connection, and hark serve turns
        # keep-alive on; do the same so the comparison is of the servers.
        t.setTcpNoDelay(True)
        t.setTcpKeepAlive(True)
        t.registerProducer(self, True)
        # Unread, for a connection that has not identified itself, means
        # published after it connected.
        if f.ad_ids:
            self.ad_pos = f.ad_ids[-1]
        self.random_pos = f.random_id
        self.last_line = _monotonic()

    def connectionLost(self, reason):
        if self.refused:
            return
        f = self.factory
        f.conns.discard(self)
        f.subs.discard(self)
        self._cancel_slow_timer()

    # IHalfCloseableProtocol: when the client closes its side, answer what
    # it sent (a final line without terminator is no command), then close.
    def readConnectionLost(self):
        self.transport.loseConnection()

    def writeConnectionLost(self):
        self.transport.loseConnection()

    # -- commands ----------------------------------------------------------

    def lineReceived(self, line):
        self.last_line = _monotonic()
        if line[-1:] == b"\r":
            line = line[:-1]
        elif len(line) > MAX_LINE:
            return self.lineLengthExceeded(line)
        if not line:
            return  # an empty line is ignored: no reply
        cmd = self._commands.get(line)
        if cmd is None:
            self.transport.write(ERR_UNKNOWN_COMMAND)
        else:
            cmd(self)

    def cmd_random(self):
        f = self.factory
        if f.random_id > self.random_pos:
            self.random_pos = f.random_id
        self.transport.write(f.random_line)

    def cmd_classified(self):
        f = self.factory
        ids = f.ad_ids
        # The oldest unread ad; when none is unread, the most recent one;
        # when there is no ad at all, an empty line.
        i = bisect_right(ids, self.ad_pos)
        if i < len(ids):
            self.ad_pos = ids[i]
            self.transport.write(f.ad_lines[i])
        elif ids:
            self.transport.write(f.ad_lines[-1])
        else:
            self.transport.write(CRLF)

    def cmd_notif(self):
        f = self.factory
        f.subs.add(self)
        # OK, then the announcements, in one write: one notif: classified
        # per unread ad, then notif: random if a number was published since
        # this connection's last random?. Pushes already handed to the
        # transport precede the OK on the wire, like those hark serve had
        # already written to the socket.
        unread = len(f.ad_ids) - bisect_right(f.ad_ids, self.ad_pos)
        out = OK
        if unread:
            out += NOTIF_CLASSIFIED * unread
        if f.random_id > self.random_pos:
            out += NOTIF_RANDOM
        self.transport.write(out)

    def cmd_stop_notif(self):
        self.factory.subs.discard(self)
        self.transport.write(OK)

    _commands = {
        b"random?": cmd_random,
        b"classified?": cmd_classified,
        b"notif": cmd_notif,
        b"stop_notif": cmd_stop_notif,
    }

    def lineLengthExceeded(self, line):
        # Replies to the lines before it are already in the transport's
        # buffer; loseConnection writes them, and this, before closing.
        log.info("closing connection: line too long ({peer})", peer=self.transport.getPeer())
        self.factory.subs.discard(self)
        self.clearLineBuffer()
        self.transport.write(ERR_LINE_TOO_LONG)
        self.transport.loseConnection()

    # -- pushes and slow readers ------------------------------------------

    def push(self, line):
        """Queue a push line. Returns False, and drops the connection, when
        the client has stopped reading."""
        if self.paused:
            self.paused_pushes += len(line)
            if self.paused_pushes > MAX_QUEUE:
                self._drop("slow reader: notification queue full")
                return False
        self.transport.write(line)
        return True

    # IPushProducer, called by the transport.
    def pauseProducing(self):
        if self.paused:
            return
        LineReceiver.pauseProducing(self)  # stops reading and parsing
        self.paused_pushes = 0
        self.slow_timer = reactor.callLater(self.factory.write_timeout, self._write_timed_out)

    def resumeProducing(self):
        self._cancel_slow_timer()
        self.paused_pushes = 0
        LineReceiver.resumeProducing(self)  # reads again, parses what is buffered

    def stopProducing(self):
        # The transport is gone; connectionLost follows.
        self.paused = True
        self._cancel_slow_timer()

    def _cancel_slow_timer(self):
        t = self.slow_timer
        if t is not None:
            self.slow_timer = None
            if t.active():
                t.cancel()

    def _write_timed_out(self):
        self.slow_timer = None
        self.factory.subs.discard(self)
        self._drop("slow reader: write timed out")

    def _drop(self, reason):
        # Leaves self in the hub's sets: this may run inside a fan-out (which
        # then takes it out of subs), and connectionLost follows shortly.
        log.info("dropping connection: {reason} ({peer})", reason=reason, peer=self.transport.getPeer())
        self.transport.abortConnection()


# ---------------------------------------------------------------------------
# The hub: items, connections, fan-out


class Hub(protocol.ServerFactory):
    """The in-memory store and the set of connections in notification mode.

    Ads are two parallel lists, ad ids (for bisect) and their reply lines
    (the value and CRLF, built once at publish), oldest first. Ids are
    unique across both kinds and increase with publication, as hark's.
    """

    protocol = NotifProtocol
    noisy = False

    def __init__(self, idle_timeout, write_timeout, max_conns, keep_ads):
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        self.max_conns = max_conns
        self.keep_ads = keep_ads
        self.last_id = 0
        self.ad_ids = []
        self.ad_lines = []
        self.random_id = 0
        self.random_line = b""
        self.conns = set()
        self.subs = set()  # connections in notification mode
        # The first random number, from a cryptographic generator, so that
        # random? always has an answer.
        self.publish(KIND_RANDOM, str(secrets.randbits(64)))

    def publish(self, kind, value):
        """Store an item and push it to every connection in notification
        mode. value is already valid for its kind. Returns (id, notified)."""
        self.last_id += 1
        item_id = self.last_id
        line = value.encode("utf-8") + CRLF
        if kind == KIND_CLASSIFIED:
            self.ad_ids.append(item_id)
            self.ad_lines.append(line)
            if len(self.ad_ids) > self.keep_ads:  # a memmove of keep_ads pointers
                del self.ad_ids[0]
                del self.ad_lines[0]
            push = NOTIF_CLASSIFIED
        else:
            self.random_id = item_id
            self.random_line = line
            push = NOTIF_RANDOM
        return item_id, self._fanout(push)

    def _fanout(self, push):
        # The idle timeout is checked here, when it matters, rather than by
        # a timer per connection: leaving notification mode is silent, so
        # the two cannot be told apart on the wire.
        stale_before = _monotonic() - self.idle_timeout
        gone = []
        n = 0
        for c in self.subs:  # push() never changes self.subs
            if c.last_line < stale_before or not c.push(push):
                gone.append(c)
            else:
                n += 1
        for c in gone:
            self.subs.discard(c)
        return n


# ---------------------------------------------------------------------------
# Validation (wire.ValidateAd, wire.ParseRandom)


class Invalid(ValueError):
    pass


_RANDOM_RE = re.compile(rb"(?:0|[1-9][0-9]{0,19})\Z")
# Go's unicode.IsControl (C0, DEL, C1), plus the line and paragraph
# separators.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _clip(s):
    return s if len(s) <= 40 else s[:40] + "…"


def parse_random(body):
    s = body.strip()
    if not s:
        return str(secrets.randbits(64))  # empty: the server draws one
    if _RANDOM_RE.match(s) and int(s) <= MAX_RANDOM:
        return s.decode("ascii")
    raise Invalid("a random number is a decimal integer from 0 to %d, got %s"
                  % (MAX_RANDOM, json.dumps(_clip(s.decode("utf-8", "replace")), ensure_ascii=False)))


def validate_ad(body):
    if not body:
        raise Invalid("an ad cannot be empty")
    if len(body) > MAX_AD_BYTES:
        raise Invalid("an ad is at most %d bytes, this one is %d" % (MAX_AD_BYTES, len(body)))
    try:
        ad = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid("an ad must be UTF-8 text: invalid byte 0x%02x at offset %d" % (body[e.start], e.start))
    m = _CONTROL_RE.search(ad)
    if m:
        raise Invalid("an ad must be one line without control characters: found U+%04X at offset %d"
                      % (ord(m.group()), len(ad[:m.start()].encode("utf-8"))))
    if ad == "OK" or ad.startswith("ERR") or ad.startswith("notif:"):
        raise Invalid('an ad cannot be exactly "OK" or start with "ERR" or "notif:": '
                      "clients would take it for a protocol line")
    return ad


# ---------------------------------------------------------------------------
# The publish API (server/http.go)


def _rfc3339(ns):
    """Go's time.Time JSON form in UTC: RFC 3339 with trimmed nanoseconds."""
    sec, frac = divmod(ns, 1_000_000_000)
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if frac:
        s += ("." + "%09d" % frac).rstrip("0")
    return s + "Z"


class PublishAPI(web_resource.Resource):
    """POST /v1/random, POST /v1/classified, GET /v1/health; one leaf
    resource that routes on the path, so that 404 and 405 are JSON too."""

    isLeaf = True

    def __init__(self, hub):
        super().__init__()
        self.hub = hub
        self.routes = {
            b"/v1/random": (b"POST", self.post_random),
            b"/v1/classified": (b"POST", self.post_classified),
            b"/v1/health": (b"GET", self.get_health),
        }

    def render(self, request):
        route = self.routes.get(request.path)
        if route is None:
            return _json(request, 404, {"error": "no such endpoint: the API is POST /v1/random, "
                                                 "POST /v1/classified and GET /v1/health"})
        allow, handler = route
        method = request.method
        if method != allow and not (allow == b"GET" and method == b"HEAD"):
            request.setHeader(b"Allow", allow)
            return _json(request, 405, {"error": "%s %s: use %s" % (
                method.decode("latin-1"), request.path.decode("latin-1"), allow.decode())})
        return handler(request)

    def _body(self, request):
        body = request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return None
        return body

    def post_random(self, request):
        return self._post(request, KIND_RANDOM, parse_random)

    def post_classified(self, request):
        return self._post(request, KIND_CLASSIFIED, validate_ad)

    def _post(self, request, kind, parse):
        body = self._body(request)
        if body is None:
            return _too_big(request)
        try:
            value = parse(body)
        except Invalid as e:
            return _json(request, 400, {"error": str(e)})
        return self._publish(request, kind, value)

    def _publish(self, request, kind, value):
        now = time.time_ns()
        item_id, notified = self.hub.publish(kind, value)
        return _json(request, 201, {"id": item_id, "kind": kind, "value": value,
                                    "time": _rfc3339(now), "notified": notified})

    def get_health(self, request):
        h = self.hub
        return _json(request, 200, {"status": "ok", "connections": len(h.conns),
                                    "notifying": len(h.subs), "ads": len(h.ad_ids),
                                    "latest_id": h.last_id})


def _too_big(request):
    return _json(request, 413, {"error": "request body over 64 KiB: an ad is at most 1000 bytes"})


def _json(request, status, obj):
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class QuietSite(web_server.Site):
    """No access log: a line per publish is not what is being measured."""

    noisy = False

    def log(self, request):
        pass


# ---------------------------------------------------------------------------
# Main


def _split_addr(addr):
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("want host:port, got %r" % addr)
    return host.strip("[]"), int(port)


def _backlog():
    # Go's listeners use the kernel's somaxconn; Twisted's default is 50,
    # which would drop SYNs when hundreds of clients connect at once.
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(50, min(int(f.read()), 65535))
    except (OSError, ValueError):
        return 4096


def _raise_nofile():
    # The Go runtime raises the soft open-file limit to the hard one at
    # start-up (hark serve gets it for free); do the same here.
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        log.warn("cannot raise the open-file limit: {e}", e=e)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Twisted comparison server for hark's line protocol, version 1 "
                                             "(in memory, not durable).")
    ap.add_argument("--listen", default=DEFAULT_LISTEN, type=_split_addr, metavar="HOST:PORT",
                    help="protocol address (default %(default)s)")
    ap.add_argument("--http", default=DEFAULT_HTTP, metavar="HOST:PORT",
                    help='publish API address; "" disables it (default %(default)s)')
    ap.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT, metavar="SECONDS",
                    help="notification mode ends after this long without a line (default %(default)s)")
    ap.add_argument("--write-timeout", type=float, default=DEFAULT_WRITE_TIMEOUT, metavar="SECONDS",
                    help="drop a client whose send buffer stays full this long (default %(default)s)")
    ap.add_argument("--max-conns", type=int, default=DEFAULT_MAX_CONNS,
                    help="most protocol connections at once (default %(default)s)")
    ap.add_argument("--keep-ads", type=int, default=DEFAULT_KEEP_ADS,
                    help="newest classified ads kept (default %(default)s)")
    args = ap.parse_args(argv)

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    _raise_nofile()

    hub = Hub(args.idle_timeout, args.write_timeout, args.max_conns, max(1, args.keep_ads))
    backlog = _backlog()
    host, port = args.listen
    lp = reactor.listenTCP(port, hub, backlog=backlog, interface=host)
    http = "(disabled)"
    if args.http:
        hhost, hport = _split_addr(args.http)
        hp = reactor.listenTCP(hport, QuietSite(PublishAPI(hub)), backlog=backlog, interface=hhost)
        http = "http://%s:%d" % (hhost, hp.getHost().port)
    # The bound ports, so that port 0 (any free port) is usable by scripts.
    log.info("serving protocol={listen} publish_api={http} ({reactor})",
             listen="%s:%d" % (host, lp.getHost().port), http=http,
             reactor=type(reactor).__name__)
    reactor.run()


if __name__ == "__main__":
    main()
