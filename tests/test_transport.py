"""The road to the platform: a total deadline per request, a capped answer, proxies and certificates as
every HTTP client honours them, and a message that names the host and the fix for each way a
connection fails. Every server here is real and listens on 127.0.0.1 (the TLS one with a throw-away CA
made by trustme); the one name looked up is under ``.invalid``, which no resolver answers.
"""

from __future__ import annotations

import http.client
import logging
import resource
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from chatlog import ChatHandler
from chatlog.destinations import resolve
from chatlog.dispatcher import Dispatcher, Timing
from chatlog.testing import FakeBot, FakePlatforms, Fault
from tests.conftest import assert_accounting, attach_only

TOKEN = "d1a1c0ffee" * 6
LOAD_SLACK_S = 1.5
"""What a loaded 2-core machine may add to a bound measured in wall time."""


def chatlog_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("chatlog:")]


def log_one(dispatcher: Dispatcher, message: str = "payment failed") -> None:
    from chatlog.capture import capture

    record = logging.LogRecord("shop", logging.ERROR, "shop.py", 7, message, None, None)
    dispatcher.buffer.append(capture(record, record.getMessage()))


def send_once(url: str, *, request_timeout: float = 10.0, http: Any = None) -> tuple[Dispatcher, float]:
    """One record, one send attempt on the calling thread; the dispatcher and the seconds it took."""
    timing = Timing(group_wait=0.0, group_interval=1.0, close_timeout=1.0, request_timeout=request_timeout)
    options: dict[str, Any] = {} if http is None else {"http": http}
    dispatcher = Dispatcher(resolve(url).destination, timing=timing, start=False, **options)
    log_one(dispatcher)
    began = time.monotonic()
    dispatcher.step()
    return dispatcher, time.monotonic() - began


@pytest.fixture
def dispatchers() -> Iterator[list[Dispatcher]]:
    made: list[Dispatcher] = []
    yield made
    for dispatcher in made:
        dispatcher.close(0.5)
        assert_accounting(dispatcher.stats())


# --- answers that never end, or never stop -----------------------------------------------------------------


class _RawAnswer(socketserver.BaseRequestHandler):
    """Reads the request, then answers as `server.answer(sock)` does."""

    def handle(self) -> None:
        self.request.settimeout(5.0)
        with _suppress_network_errors():
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.server.answer(self.request)  # type: ignore[attr-defined]


class _suppress_network_errors:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


class RawServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        super().__init__(("127.0.0.1", 0), _RawAnswer)
        self.answer = answer
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/robot/send?access_token={TOKEN}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Callable[[socket.socket], None]) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_answer_trickling_one_byte_per_second_is_given_up_at_the_total_deadline(
    raw_server: Callable[..., RawServer], dispatchers: list[Dispatcher], capsys: pytest.CaptureFixture[str],
) -> None:
    body = b'{"errcode": 0, "errmsg": "ok", "padding": "' + b"x" * 30 + b'"}'

    def trickle(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        for byte in body:  # 70 s in all; each read returns within a second, so no read ever times out
            sock.sendall(bytes([byte]))
            time.sleep(1.0)

    server = raw_server(trickle)
    dispatcher, took = send_once(server.url, request_timeout=2.0)
    dispatchers.append(dispatcher)
    assert took < 2.0 + LOAD_SLACK_S, f"the request took {took:.1f} s with request_timeout=2"
    stats = dispatcher.stats()
    assert (stats.messages_failed, stats.pending, stats.dropped) == (1, 1, 0)  # kept for the retry
    [line] = chatlog_lines(capsys.readouterr().err)
    host = f"127.0.0.1:{server.server_address[1]}"
    # Whichever notices first: the check between chunks, or a read whose timeout was cut to what was left.
    words = (f"{host} did not finish its answer within 2 s", f"{host} within request_timeout=2 s")
    assert any(w in line for w in words), line
    assert "retrying" in line


def test_gigabyte_answer_is_cut_off_at_64_kib_and_retried_without_memory_growth(
    raw_server: Callable[..., RawServer], dispatchers: list[Dispatcher], capsys: pytest.CaptureFixture[str],
) -> None:
    sent = [0]
    chunk = b"<html>" + b"x" * 65_530

    def flood(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % 2**30)
        while sent[0] < 2**30:  # 1 GiB, until chatlog hangs up
            sock.sendall(chunk)
            sent[0] += len(chunk)

    server = raw_server(flood)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    dispatcher, took = send_once(server.url, request_timeout=5.0)
    dispatchers.append(dispatcher)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert took < 5.0, f"reading the answer took {took:.1f} s"
    time.sleep(0.2)
    assert sent[0] < 16 * 2**20, f"chatlog let the server send {sent[0] / 2**20:.0f} MiB"
    assert grown < 32 * 2**20, f"peak RSS grew by {grown / 2**20:.0f} MiB"
    stats = dispatcher.stats()
    assert (stats.messages_failed, stats.pending) == (1, 1)
    [line] = chatlog_lines(capsys.readouterr().err)
    assert "sent an answer larger than 64 KiB (HTTP 200)" in line and "retrying" in line


# --- how a connection fails: one message each, naming the host and the fix -------------------------------


def test_unknown_host_is_a_dns_message_naming_the_host_and_the_proxy_fix(
    dispatchers: list[Dispatcher], capsys: pytest.CaptureFixture[str]
) -> None:
    dispatcher, _ = send_once(f"http://chatlog-alerts.invalid/robot/send?access_token={TOKEN}")
    dispatchers.append(dispatcher)
    [line] = chatlog_lines(capsys.readouterr().err)
    assert "cannot resolve the host name chatlog-alerts.invalid (DNS)" in line and "proxy=" in line
    assert dispatcher.stats().pending == 1


def test_server_that_never_answers_is_a_timeout_message_naming_the_host(
    fake_platforms: FakePlatforms, dispatchers: list[Dispatcher], capsys: pytest.CaptureFixture[str]
) -> None:
    bot = fake_platforms.add_bot("dingtalk")
    bot.set_fault(Fault.hang())
    dispatcher, took = send_once(bot.url, request_timeout=1.0)
    dispatchers.append(dispatcher)
    bot.release()
    assert took < 1.0 + LOAD_SLACK_S
    [line] = chatlog_lines(capsys.readouterr().err)
    port = fake_platforms.base_url.rpartition(":")[2]
    assert f"no answer from 127.0.0.1:{port} within request_timeout=1 s" in line


@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "company-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
def tls_bot(fake_platforms: FakePlatforms, tls_ca: tuple[trustme.CA, Path]) -> Iterator[tuple[FakeBot, str]]:
    """A DingTalk bot behind a TLS front on 127.0.0.1 whose certificate only `tls_ca` vouches for."""
    ca, _ = tls_ca
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bot = fake_platforms.add_bot("dingtalk")
    backend = int(fake_platforms.base_url.rpartition(":")[2])
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pump(source: Any, target: Any) -> None:
        with _suppress_network_errors():
            while data := source.recv(65536):
                target.sendall(data)
        with _suppress_network_errors():
            target.close()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                tls = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):  # the client refused our certificate: that is the test
                raw.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", backend))
            threading.Thread(target=pump, args=(tls, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    port = listener.getsockname()[1]
    yield bot, f"https://127.0.0.1:{port}/robot/send?access_token={bot.token}"
    stop.set()
    listener.close()


def test_untrusted_certificate_is_a_tls_message_naming_the_host_and_verify(
    tls_bot: tuple[FakeBot, str], dispatchers: list[Dispatcher], capsys: pytest.CaptureFixture[str]
) -> None:
    bot, url = tls_bot
    dispatcher, _ = send_once(url)
    dispatchers.append(dispatcher)
    [line] = chatlog_lines(capsys.readouterr().err)
    host = url.split("/")[2]
    assert f"the TLS certificate of {host} is not trusted" in line and "verify=" in line
    assert bot.received == [] and dispatcher.stats().pending == 1


@pytest.mark.parametrize("how", ["verify=ca-bundle", "verify=False", "SSL_CERT_FILE"])
def test_company_ca_bundle_or_no_verification_delivers_over_tls(
    tls_bot: tuple[FakeBot, str], tls_ca: tuple[trustme.CA, Path], make_handler: Callable[..., ChatHandler],
    app_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    bot, url = tls_bot
    _, ca_path = tls_ca
    options: dict[str, Any] = {}
    if how == "verify=ca-bundle":
        options["verify"] = str(ca_path)
    elif how == "verify=False":
        options["verify"] = False
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
    handler = make_handler(url, **options)
    attach_only(app_logger, handler)
    app_logger.error("card declined for order %s", 42)
    assert handler.flush(timeout=5.0)
    assert "card declined for order 42" in bot.texts()[0]


# --- proxies -----------------------------------------------------------------------------------------------


class ForwardProxy(ThreadingHTTPServer):
    """A plain HTTP forward proxy on 127.0.0.1: takes absolute-form requests, forwards, relays the answer."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: ForwardProxy = self.server  # type: ignore[assignment]
        server.seen.append(self.path.split("?")[0])
        target = self.path.split("/")[2]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        upstream = http.client.HTTPConnection(target, timeout=10)
        upstream.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy",
                 "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("how", ["HTTP_PROXY", "proxy="])
def test_proxy_from_the_environment_or_the_option_carries_the_alert(
    fake_platforms: FakePlatforms, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch,
    make_handler: Callable[..., ChatHandler], app_logger: logging.Logger, how: str,
) -> None:
    bot = fake_platforms.add_bot("wecom")
    options: dict[str, Any] = {}
    if how == "HTTP_PROXY":
        clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
    else:
        clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the option wins over the environment
        options["proxy"] = proxy.url
    handler = make_handler(bot.url, **options)
    attach_only(app_logger, handler)
    app_logger.error("warehouse sync failed")
    assert handler.flush(timeout=5.0)
    assert "warehouse sync failed" in bot.texts()[0]
    assert proxy.seen == [f"{fake_platforms.base_url}/cgi-bin/webhook/send"]


def test_no_proxy_sends_directly(
    fake_platforms: FakePlatforms, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch,
    make_handler: Callable[..., ChatHandler], app_logger: logging.Logger,
) -> None:
    bot = fake_platforms.add_bot("wecom")
    clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    handler = make_handler(bot.url)
    attach_only(app_logger, handler)
    app_logger.error("warehouse sync failed")
    assert handler.flush(timeout=5.0)
    assert len(bot.messages) == 1 and proxy.seen == []


def test_proxy_that_refuses_is_named_without_its_password(
    fake_platforms: FakePlatforms, clean_proxy_env: pytest.MonkeyPatch, dispatchers: list[Dispatcher],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from chatlog.courier import http_options

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bot = fake_platforms.add_bot("wecom")
    dispatcher, _ = send_once(bot.url, http=http_options(f"http://ops:proxy-pass-7781@127.0.0.1:{port}"))
    dispatchers.append(dispatcher)
    [line] = chatlog_lines(capsys.readouterr().err)
    assert "refused" in line and f"(through proxy http://127.0.0.1:{port})" in line
    assert "proxy-pass-7781" not in line and bot.received == []


@pytest.mark.parametrize(("options", "words"), [
    ({"proxy": "ftp://proxy.example.com:21"}, "proxy must be scheme://host[:port]"),
    ({"proxy": "http://ops:proxy-pass-7781@:3128"}, "proxy must be scheme://host[:port]"),
    ({"proxy": 3128}, "proxy must be a URL string"),
    ({"verify": "/nonexistent/company-ca.pem"}, "no such file or directory"),
    ({"verify": "yes please"}, "no such file or directory"),
    ({"verify": 1.0}, "verify must be True, False or a CA bundle path"),
])
def test_bad_proxy_or_verify_fails_at_construction_with_an_example(
    options: dict[str, Any], words: str
) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        ChatHandler("wecom://KEY", **options)
    message = str(caught.value)
    assert words in message and "e.g." in message and "proxy-pass-7781" not in message


def test_loguru_sink_takes_proxy_and_verify_and_checks_them_at_construction(
    fake_platforms: FakePlatforms, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch,
) -> None:
    from chatlog.loguru import sink

    with pytest.raises(ValueError, match="no such file or directory"):
        sink("wecom://KEY", verify="/nonexistent/company-ca.pem")
    bot = fake_platforms.add_bot("wecom")
    chat = sink(bot.url, proxy=proxy.url, group_wait=0.05, close_timeout=2.0)
    try:
        from loguru import logger

        sink_id = logger.add(chat, level="ERROR")
        logger.error("loguru alert through the proxy")
        logger.remove(sink_id)  # stops the sink: delivers within close_timeout
    finally:
        chat.stop()
    assert "loguru alert through the proxy" in bot.texts()[0] and len(proxy.seen) == 1
