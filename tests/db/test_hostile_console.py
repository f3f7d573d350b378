"""What a stranger (or a signed-in user) can send the running console: `screening web` in a
process of its own, as systemd runs it, its memory and its temporary files watched."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from screening.web.limits import BODY_S
from tests.cli_helpers import run, start_web
from tests.e2e.conftest import free_port

PASSWORD = "hostile test passphrase"
MB = 1024 * 1024


@dataclass
class Console:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    tmp: Path  # the console's TMPDIR: where a multipart body would be spooled
    env: dict[str, str]

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        m = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert m is not None
        return int(m.group(1)) / 1024

    def spooled(self) -> int:
        return sum(f.stat().st_size for f in self.tmp.rglob("*") if f.is_file())

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        """A browser at `source` (any 127.0.0.0/8 address: another host, to the console)."""
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, trust_env=False, timeout=10, transport=transport)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    env = {"SCREENING_DATABASE_URL": f"sqlite:///{tmp_path / 'screening.db'}"}
    assert run("db", "upgrade", env=env).code == 0
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    for name, role in [
        ("alice", ("--role", "admin")),
        ("bob", ("--role", "user", "--extension", "201")),
    ]:
        r = run("user", "add", name, *role, "--password-file", str(tmp_path / "pw"), env=env)
        assert r.code == 0, r.err
    spool = tmp_path / "spool"
    spool.mkdir()
    port = free_port()
    full = {
        **env,
        "TMPDIR": str(spool),
        "SCREENING_WEB_SECRET_KEY": "k" * 48,
        "SCREENING_METRICS_LISTEN": "off",
    }
    proc = start_web(full, port, tmp_path / "web.log")
    url = f"http://127.0.0.1:{port}"
    yield Console(url, port, proc, spool, env)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def raw_request(port: int, head: str, body_mb: int, chunked: bool) -> tuple[str, int]:
    """Send `head`, then up to `body_mb` MB of body (chunked or as declared) for as long as
    the console takes it; (status line, MB it took before answering)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head.encode())
    chunk = b"a=" + b"x" * (MB - 2)
    sent = 0
    try:
        for _ in range(body_mb):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused while we sent: as good
    s.settimeout(10)
    try:
        answer = s.recv(4096).decode(errors="replace")
    except ConnectionResetError:
        answer = ""
    s.close()
    return answer.split("\r\n", 1)[0], sent


def login_form_head(length: int | None) -> str:
    size = (
        f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    )
    return (
        "POST /login HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n{size}\r\n"
    )


def test_a_huge_login_body_is_refused_before_it_is_read(console: Console) -> None:
    # 300 MB to /login, unauthenticated, used to grow the console by ~285 MB.
    before = console.rss_mb()
    declared, _ = raw_request(console.port, login_form_head(300 * MB), 300, chunked=False)
    chunked, sent = raw_request(console.port, login_form_head(None), 300, chunked=True)
    assert declared.startswith("HTTP/1.1 413") and chunked.startswith("HTTP/1.1 413")
    assert sent < 300  # it stopped taking the body
    assert console.rss_mb() - before < 30
    assert console.proc.poll() is None


def test_an_upload_is_not_read_before_the_session_and_its_token_are_checked(
    console: Console,
) -> None:
    # A 400 MB upload was spooled (~343 MB to disk) before its 403.
    files = {"file": ("big.csv", b"kind,number\n" + b"block,+15550000001\n" * (3 * MB // 19))}
    with console.client() as c:
        r = c.post("/transfer", files=files, follow_redirects=False)  # not signed in
        assert r.status_code == 303 and r.headers["location"] == "/login"
        page = c.get("/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        r = c.post("/login", data={"csrf": token.group(1), "name": "alice", "password": PASSWORD})
        assert r.status_code in (200, 303)
        r = c.post("/transfer", params={"csrf": "wrong"}, files=files)
        assert r.status_code == 403
    assert console.spooled() == 0
    head = (
        "POST /transfer HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {400 * MB}\r\n\r\n"
    )
    status, sent = raw_request(console.port, head, 400, chunked=False)
    assert status.startswith("HTTP/1.1 413") and sent < 400
    assert console.spooled() == 0


def test_the_api_refuses_a_big_body_before_reading_it(console: Console) -> None:
    # It read the whole body, then checked its 16 KB.
    issued = run("user", "token", "alice", env=console.env)
    assert issued.code == 0, issued.err
    token = issued.out.strip().split()[-1]
    for who in (token, "not-a-token"):
        head = (
            f"POST /api/v1/lists/block HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {who}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        before = console.rss_mb()
        status, sent = raw_request(console.port, head, 200, chunked=True)
        assert status.split(" ")[1] == ("413" if who == token else "401"), status
        assert sent < 200 and console.rss_mb() - before < 30
    with console.client() as c:
        r = c.post(
            "/api/v1/lists/block",
            content=b"{}" + b" " * 20000,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 413


@pytest.mark.parametrize("length", ["²", "-5", "1e9", "99999999999999999999999"])
def test_a_content_length_that_is_not_a_number_is_refused(console: Console, length: str) -> None:
    s = socket.create_connection(("127.0.0.1", console.port), timeout=10)
    s.sendall(f"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
    answer = s.recv(4096).decode(errors="replace")
    s.close()
    assert answer.split(" ", 2)[1] in ("400", "413"), answer[:80]
    assert console.proc.poll() is None


def signed_in(console: Console, name: str, password: str = PASSWORD) -> httpx.Client:
    c = console.client()
    page = c.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    r = c.post("/login", data={"csrf": token.group(1), "name": name, "password": password})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text[:200]
    return c


def copy_of(c: httpx.Client, console: Console) -> httpx.Client:
    """Another client holding only a copy of c's session cookie (as a thief would)."""
    thief = console.client()
    thief.cookies.set("screening_session", c.cookies["screening_session"])
    return thief


def works(c: httpx.Client) -> bool:
    return c.get("/ext/201").status_code == 200


def test_a_copied_session_cookie_ends_with_logout_passwd_role_and_removal(
    console: Console,
) -> None:
    # Sessions were signed cookies that survived logout and `passwd`: a copy still worked.
    env = console.env
    pw = console.tmp.parent / "pw"
    steps = [
        ("logout", None),
        ("passwd", ["user", "passwd", "bob", "--password-file", str(pw)]),
        ("role", ["user", "role", "bob", "--role", "user", "--extension", "201"]),
        ("remove", ["user", "remove", "bob"]),
    ]
    for what, command in steps:
        bob = signed_in(console, "bob")
        thief = copy_of(bob, console)
        assert works(thief), what
        if command is None:
            token = re.search(r'name="csrf" value="([^"]+)"', bob.get("/ext/201").text)
            assert token is not None
            assert bob.post("/logout", data={"csrf": token.group(1)}).status_code == 303
        else:
            assert run(*command, env=env).code == 0
        r = thief.get("/ext/201", follow_redirects=False)
        assert (r.status_code, r.headers.get("location")) == (303, "/login"), what


def test_the_owners_browser_signs_in_while_a_stranger_has_the_account_locked(
    console: Console,
) -> None:
    admin = signed_in(console, "alice")  # an earlier good login marks this browser
    assert "screening_device" in admin.cookies
    stranger = console.client()
    for _ in range(8):
        page = stranger.get("/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        data = {"csrf": token.group(1), "name": "alice", "password": "a guess"}
        assert stranger.post("/login", data=data).status_code == 401
    with pytest.raises(AssertionError):
        signed_in(console, "alice")  # a new browser: locked to strangers for now
    device = admin.cookies["screening_device"]
    again = console.client()
    again.cookies.set("screening_device", device)
    page = again.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    r = again.post("/login", data={"csrf": token.group(1), "name": "alice", "password": PASSWORD})
    assert (r.status_code, r.headers.get("location")) == (303, "/")


def test_a_short_secret_key_is_refused_at_start(console: Console, tmp_path: Path) -> None:
    env = {**console.env, "SCREENING_WEB_SECRET_KEY": "short", "SCREENING_METRICS_LISTEN": "off"}
    r = run("web", "--listen", f"127.0.0.1:{free_port()}", env=env)
    assert r.code == 2
    assert "web.secret_key: expected at least 32 characters" in r.err


def peak_mb(pid: int) -> float:
    """The process's resident high-water mark."""
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert m is not None
    return int(m.group(1)) / 1024


def test_a_flood_of_logins_is_answered_429_past_a_few_password_checks(console: Console) -> None:
    # Each password check takes 64 MiB (argon2) and ran on the shared threads, as many as
    # arrived at once: 60 logins at once took the console ~300 MB higher and held the
    # threads every other page needs.
    clients = [console.client(f"127.0.0.{10 + i}") for i in range(60)]  # 60 hosts
    forms = []
    for c in clients:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
        assert token is not None
        forms.append({"csrf": token.group(1), "name": "nobody", "password": "a guess"})
    before = peak_mb(console.proc.pid)
    with ThreadPoolExecutor(60) as pool:
        pairs = zip(clients, forms, strict=True)
        answers = list(pool.map(lambda cf: cf[0].post("/login", data=cf[1]), pairs))
    codes = Counter(a.status_code for a in answers)
    assert set(codes) == {401, 429} and codes[401] >= 10, codes  # at least the 2 + 8 in line
    busy = next(a for a in answers if a.status_code == 429)
    assert busy.headers["retry-after"] == "5" and "try again in a few seconds" in busy.text
    assert peak_mb(console.proc.pid) - before < 180  # 2 checks at once, not one per login
    owner = signed_in(console, "alice")  # and when the flood is over, a login works
    assert owner.get("/", follow_redirects=False).status_code == 200


def test_one_address_flooding_logins_keeps_out_neither_the_owner_nor_other_hosts(
    console: Console,
) -> None:
    # The password checks had one queue for everyone: 12 clients guessing alice's password
    # from one address filled it, and alice, from the browser she had logged in from,
    # got 429 like everyone else, for as long as the flood went on.
    owner = signed_in(console, "alice")  # her browser now has its device cookie
    stop = threading.Event()

    def guess() -> Counter[int]:
        c, seen = console.client(), Counter[int]()
        form = {"csrf": _csrf(c), "name": "alice", "password": "a guess"}
        while not stop.is_set():
            seen[c.post("/login", data=form).status_code] += 1
        return seen

    def log_in(c: httpx.Client, name: str) -> int:
        form = {"csrf": _csrf(c), "name": name, "password": PASSWORD}
        return c.post("/login", data=form).status_code

    with ThreadPoolExecutor(12) as pool:
        flood = [pool.submit(guess) for _ in range(12)]
        try:
            time.sleep(1)
            hers = []
            for _ in range(10):
                hers.append(log_in(owner, "alice"))
                time.sleep(0.2)
            elsewhere = log_in(console.client("127.0.0.2"), "bob")  # another host, no cookie
        finally:
            stop.set()  # else a login that failed above leaves the pool waiting for ever
        guessed = sum((f.result() for f in flood), Counter[int]())
    assert hers == [303] * 10, Counter(hers)
    assert elsewhere == 303
    assert guessed[429] > guessed[401], guessed  # two at a time from that address


def _csrf(c: httpx.Client) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert token is not None
    return token.group(1)


def test_clients_that_send_slowly_cannot_hold_the_console(console: Console) -> None:
    # uvicorn has no time limit on a request's headers: 300 clients that never finished
    # theirs held every one of the console's 256 connections, and the admin got 503 for as
    # long as they stayed. Likewise a body that never ends.
    bodies = [socket.create_connection(("127.0.0.1", console.port)) for _ in range(20)]
    for s in bodies:  # "100 Continue" says the server has the request: the heads come after
        s.sendall(
            login_form_head(4000).replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n").encode()
        )
    for s in bodies:
        s.settimeout(5)
        assert s.recv(100).startswith(b"HTTP/1.1 100 ")
        s.sendall(b"name=a")
    heads = [socket.create_connection(("127.0.0.1", console.port)) for _ in range(280)]
    for s in heads:
        s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n")
    with console.client() as c:
        assert c.get("/login").status_code == 200  # room made: a slow head was closed
        time.sleep(BODY_S + 2)
        assert c.get("/login").status_code == 200
    for s in heads:
        s.settimeout(1)
        assert _unanswered(s)
    for s in bodies:
        s.settimeout(1)
        assert s.recv(100).startswith(b"HTTP/1.1 408 ")
    for s in heads + bodies:
        s.close()
    assert console.proc.poll() is None


def test_connections_that_keep_coming_back_cannot_keep_the_admin_out(console: Console) -> None:
    # Closing slow heads after 10 s was not enough: a client that opened 256 connections,
    # sent nothing and opened them again as they closed kept every one of them, and the
    # admin got 503 throughout.
    stop = threading.Event()

    def idle() -> None:  # connections that send nothing, reopened as they close
        conns: list[socket.socket] = []
        while not stop.is_set():
            conns = [c for c in conns if not _closed(c)]
            while len(conns) < 300:
                conns.append(socket.create_connection(("127.0.0.1", console.port)))
            time.sleep(0.05)
        for c in conns:
            c.close()

    flood = threading.Thread(target=idle)
    flood.start()
    time.sleep(2)
    try:
        answers = []
        for _ in range(20):
            with console.client() as c:
                answers.append(c.get("/login").status_code)
            time.sleep(0.5)
    finally:
        stop.set()
        flood.join()
    assert answers == [200] * 20, Counter(answers)


def _unanswered(s: socket.socket) -> bool:
    """Closed without an answer (reset, if it was closed before its bytes were read)."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def _closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
