"""`screening doctor`: checks a live installation the way an admin would, one item at a time,
and says how to fix each failure. It asks ARI over HTTP and Asterisk's CLI (`asterisk -rx`,
or another command for a chroot or container), so it runs on the PBX as root or as the
asterisk user.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from screening.asterisk.dialplan import CHALLENGE_RUN_CONTEXT
from screening.config import Config
from screening.service import ops
from screening.store import migrate
from screening.store.engine import Engine

#: Where every rejection is sent (asterisk-conf/extensions.conf): with the module, or not.
SEND_CONTEXT = "screening-send"
#: The contexts that screen calls (asterisk-conf/extensions.conf).
SCREENING_CONTEXTS = ("screening-inbound", "screening-inbound-agi")
# Entered by Gosub only: where the inbound contexts wait for a door, bounded.
WAIT_CONTEXT = "screening-wait"
#: Largest clock difference with Asterisk that passes.
CLOCK_SKEW_S = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


class Asterisk:
    """Asterisk's CLI through a command (default `asterisk -rx`)."""

    def __init__(self, command: str) -> None:
        self.command = command  # as given, for messages
        self._argv = shlex.split(command)

    def run(self, line: str) -> str | None:
        """The command's output, or None when the CLI cannot be reached."""
        try:
            proc = subprocess.run(
                [*self._argv, line], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0 or "Unable to connect to remote asterisk" in proc.stdout:
            return None
        return proc.stdout


def diagnose(
    config: Config,
    engine: Engine | Callable[[], Engine],
    cli: Asterisk,
    allow_unscreened: frozenset[str] = frozenset(),
) -> list[Check]:
    checks: list[Check] = [_schema(engine)]
    checks += _ari(config)
    console = cli.run("core show version")
    if console is None:
        checks.append(
            Check(
                "Asterisk CLI",
                False,
                f"cannot run {cli.command!r}",
                "run the doctor on the PBX as root or the asterisk user, or give --asterisk "
                "with the command that reaches its CLI (e.g. 'docker exec pbx asterisk -rx')",
            )
        )
        return checks
    checks.append(Check("Asterisk CLI", True, " ".join(console.split()[:2])))
    checks.append(_pjsiphangup(cli))
    checks.append(_module(cli, config))
    checks.append(_inbound(cli, SEND_CONTEXT, "TryExec(ScreeningHangup(${EXTEN}))"))
    checks.append(_http_bound(cli))
    contexts = _trunk_contexts(cli)
    checks.append(_trunks(contexts, allow_unscreened))
    used = set(contexts.values())
    waits = []
    if "screening-inbound" in used or not used:
        checks.append(_inbound(cli, "screening-inbound", "Gosub(screening-wait,ari,1)"))
        checks.append(_registered(config))
        waits.append(f"Stasis({config.ari_app},call,${{SCREENING_CALL}})")
    if "screening-inbound-agi" in used:
        checks.append(_inbound(cli, "screening-inbound-agi", "Gosub(screening-wait,agi,1)"))
        checks.append(_fastagi(config))
        waits.append(f"AGI(agi://{config.agi_host}:{config.agi_port}/screen?${{SCREENING_CALL}})")
    checks += [_inbound(cli, WAIT_CONTEXT, target) for target in waits]
    if _challenges(engine):
        checks.append(_inbound(cli, CHALLENGE_RUN_CONTEXT, "Read(SCREENING_PRESSED,"))
    checks.append(_clock(config))
    return checks


def _challenges(engine: Engine | Callable[[], Engine]) -> bool:
    """Whether any policy challenges: only then must the dialplan have the challenge (the
    schema check above reports a database that cannot be read)."""
    try:
        return ops.any_challenge(engine() if callable(engine) else engine)
    except Exception:
        return False


def _schema(engine: Engine | Callable[[], Engine]) -> Check:
    try:
        db = engine() if callable(engine) else engine
        have, want = migrate.current(db), migrate.head()
    except Exception as e:
        return Check(
            "database",
            False,
            f"cannot open it: {str(e).strip().splitlines()[0][:160]}",
            "check database_url (SCREENING_DATABASE_URL) and that the server runs",
        )
    if have != want:
        return Check(
            "database schema",
            False,
            f"at revision {have or 'empty'}, this version needs {want}",
            "run `screening db upgrade`",
        )
    narrow = migrate.narrow_tables(db)
    if narrow:
        return Check(
            "database schema",
            False,
            f"current (revision {have}), but {', '.join(narrow)} not utf8mb4: emoji in caller "
            "names are replaced",
            f"run, off-peak: {migrate.widen_sql(narrow)}",
        )
    return Check("database schema", True, f"current (revision {have})")


def _http(config: Config) -> httpx.Client:
    return httpx.Client(
        base_url=f"{config.ari_url}/ari",
        auth=(config.ari_user, config.ari_password),
        timeout=5,
        trust_env=False,
    )


def _ari(config: Config) -> list[Check]:
    name = f"ARI at {config.ari_url} as {config.ari_user!r}"
    try:
        with _http(config) as http:
            r = http.get("/asterisk/info")
    except httpx.HTTPError as e:
        return [
            Check(
                name,
                False,
                f"unreachable: {e}",
                "enable Asterisk's HTTP server and ARI (asterisk-conf/http.conf, ari.conf) "
                "and check ari.url",
            )
        ]
    if r.status_code in (401, 403):
        return [
            Check(
                name,
                False,
                f"HTTP {r.status_code}: the credentials are refused",
                "make ari.user / ari.password (or ari.password_file) match the user in "
                "ari.conf, then `asterisk -rx 'module reload res_ari.so'`",
            )
        ]
    if r.status_code != 200:
        return [Check(name, False, f"HTTP {r.status_code}", "is ARI enabled in ari.conf?")]
    return [Check(name, True, "reachable, credentials accepted")]


def _registered(config: Config) -> Check:
    name = f"ARI app {config.ari_app!r} registered"
    try:
        with _http(config) as http:
            r = http.get(f"/applications/{config.ari_app}")
    except httpx.HTTPError as e:
        return Check(name, False, f"cannot ask ARI: {e}", "see the ARI check above")
    if r.status_code == 200:
        return Check(name, True, "`screening serve` is connected")
    return Check(
        name,
        False,
        "no app of that name is connected: calls pass unscreened",
        "start it: `systemctl start screening-serve` (or `screening serve`)",
    )


def _pjsiphangup(cli: Asterisk) -> Check:
    out = cli.run("core show application PJSIPHangup") or ""
    if "Info about Application 'PJSIPHangup'" in out:
        return Check("PJSIPHangup available", True, "607/608 can be sent")
    return Check(
        "PJSIPHangup available",
        False,
        "no such application: rejected calls would get another code",
        "upgrade Asterisk to 18.21 / 20.6 / 21.1 or newer, with chan_pjsip loaded",
    )


#: The interface version of asterisk-module/res_screening.c this code drives (its
#: SCREENING_MODULE_VERSION, in the module's description).
MODULE_VERSION = "1"
MODULE = "res_screening.so"
WITHOUT_MODULE = (
    "every 607/608 carries Asterisk's own `Reason: Q.850;cause=0` (no such cause: a gateway "
    "that honours it maps the rejection to it)"
)


def _module(cli: Asterisk, config: Config) -> Check:
    """Loaded, and of the version this screening drives; without it calls are still
    rejected, but the network hears less (and 603+ or the jCard not at all)."""
    name = "screening's Asterisk module"
    out = cli.run(f"module show like {MODULE}") or ""
    found = re.search(rf"^{re.escape(MODULE)}\s+(.*?)\s+\d+\s+Running", out, flags=re.M)
    build = "build and load it: docs/asterisk-module.md"
    if found is None:
        needs = _needs_module(config)
        detail = f"not loaded: {WITHOUT_MODULE}" + (f"; and {needs}" if needs else "")
        return Check(
            name,
            not needs,
            detail + "; suppress_q850_reason_headers=yes on the trunk's endpoint sends no Reason",
            build,
        )
    version = re.match(r"screening v(\S+):", found.group(1))
    if version is None or version.group(1) != MODULE_VERSION:
        got = version.group(1) if version else "unknown"
        return Check(
            name,
            False,
            f"version {got} loaded, this screening drives version {MODULE_VERSION}",
            f"rebuild it from this screening's asterisk-module/ (docs/asterisk-module.md), "
            f"then `module unload {MODULE}` and `module load {MODULE}`",
        )
    return Check(name, True, f"{MODULE} version {MODULE_VERSION}: Reason Q.850;cause=21")


def _needs_module(config: Config) -> str:
    wire = config.wire
    if wire.provider_mode:
        return "provider mode's 603+ goes out as a plain 603 Decline"
    if wire.jcard_url:
        return "no rejection carries the redress jCard"
    return ""


def _http_bound(cli: Asterisk) -> Check:
    out = cli.run("http show status") or ""
    m = re.search(r"Bound to (\[?[^\]\s]+?\]?):(\d+)", out)
    if m is None:
        return Check("ARI bound to loopback", False, "the HTTP server is not enabled", "")
    host = m.group(1).strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return Check("ARI bound to loopback", True, f"{host}:{m.group(2)}")
    return Check(
        "ARI bound to loopback",
        False,
        f"bound to {host}:{m.group(2)}: ARI is reachable from other hosts",
        "set bindaddr=127.0.0.1 in http.conf (asterisk-conf/http.conf), then "
        "`asterisk -rx 'module reload http'`",
    )


def _trunk_contexts(cli: Asterisk) -> dict[str, str]:
    """PJSIP endpoints matched by IP (`identify`: trunks) -> their context."""
    out = cli.run("pjsip show identifies") or ""
    found = re.findall(r"^\s*Identify:\s+([^<\s]\S*?)/(\S+)", out, flags=re.M)
    names = sorted({endpoint for _identify, endpoint in found})
    contexts = {}
    for name in names:
        detail = cli.run(f"pjsip show endpoint {name}") or ""
        m = re.search(r"^\s*context\s*:\s*(\S+)", detail, flags=re.M)
        contexts[name] = m.group(1) if m else "?"
    return contexts


def _trunks(contexts: dict[str, str], allowed: frozenset[str]) -> Check:
    name = "trunks go through screening"
    if not contexts:
        return Check(name, True, "no PJSIP trunks (endpoints with an identify) found")
    bad = {t: c for t, c in contexts.items() if c not in SCREENING_CONTEXTS and t not in allowed}
    if bad:
        listed = ", ".join(f"{t} (context {c})" for t, c in sorted(bad.items()))
        return Check(
            name,
            False,
            f"not screened: {listed}",
            "set context=screening-inbound (or screening-inbound-agi) on the trunk's endpoint "
            "in pjsip.conf; --allow-unscreened NAME for a trunk that should not be",
        )
    return Check(name, True, f"{len(contexts)} trunk(s): " + ", ".join(sorted(contexts)))


def _inbound(cli: Asterisk, context: str, target: str) -> Check:
    out = cli.run(f"dialplan show {context}") or ""
    name = f"context {context} loaded"
    if f"'{context}'" not in out or "There is no existence" in out:
        return Check(
            name,
            False,
            "not in the dialplan",
            "add asterisk-conf/extensions.conf to /etc/asterisk and `dialplan reload` "
            "(a syntax error anywhere in extensions.conf drops the whole dialplan)",
        )
    if target not in out:
        older = _older(out) if context in SCREENING_CONTEXTS else None
        if older:
            return Check(
                name,
                False,
                f"it is the dialplan of an older screening, {older}",
                "copy asterisk-conf/extensions.conf again (keep your [screening-route]) and "
                "`dialplan reload`",
            )
        return Check(
            name,
            False,
            f"it does not call {target}",
            "compare with asterisk-conf/extensions.conf: the app name (ari.app) and the "
            "FastAGI address (agi.listen) must match",
        )
    return Check(name, True, f"reaches {target}")


def _older(shown: str) -> str | None:
    """Why a context that `dialplan show` printed is an older screening's, if it is one."""
    if "SCREENING_IDENTITY" in shown:
        return "whose arguments a caller can shift"
    if re.search(r"^\s*'T' =>", shown, flags=re.M):
        # Its time-out extension sat where a trunk's caller can dial it.
        return "where a caller who dials T is not screened"
    return None


def _fastagi(config: Config) -> Check:
    where = f"{config.agi_host}:{config.agi_port}"
    try:
        with socket.create_connection((config.agi_host, config.agi_port), timeout=2):
            pass
    except OSError as e:
        return Check(
            f"FastAGI server at {where}",
            False,
            f"not reachable ({e.strerror or e}): calls pass unscreened",
            "start it: `systemctl start screening-agi` (or `screening agi`)",
        )
    return Check(f"FastAGI server at {where}", True, "accepting connections")


def _clock(config: Config) -> Check:
    zone = _host_zone()
    try:
        with _http(config) as http:
            r = http.get("/asterisk/ping")
        theirs = parsedate_to_datetime(r.headers["date"]).timestamp()
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return Check(f"time zone {zone}, clock", zone != "unknown", "Asterisk's clock unknown")
    skew = time.time() - theirs
    if zone == "unknown":
        return Check(
            "time zone",
            False,
            "this host has no time zone set: DND schedules without --tz use UTC",
            "timedatectl set-timezone Region/City",
        )
    if abs(skew) > CLOCK_SKEW_S:
        return Check(
            f"time zone {zone}, clock",
            False,
            f"{skew:+.1f} s against Asterisk's",
            "synchronise both hosts' clocks (systemd-timesyncd, chrony)",
        )
    return Check(f"time zone {zone}, clock", True, f"{skew:+.1f} s against Asterisk's")


def _host_zone() -> str:
    try:
        target = Path("/etc/localtime").resolve()
    except OSError:
        return "unknown"
    if "zoneinfo/" in str(target):
        return str(target).split("zoneinfo/", 1)[1]
    return "unknown"
