"""What a stranger (or a signed-in user) can send the running console: `screening web` in a
process of its own, as systemd runs it, its memory and its temporary files watched."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

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

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=10)


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
