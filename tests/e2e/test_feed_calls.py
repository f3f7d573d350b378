"""A subscribed feed, end to end: the FTC's daily file served over HTTP on loopback, fetched
by `screening feed update`, and a real INVITE from a number in it rejected through each door
with the feed named in the log; a number not in it rings."""

from __future__ import annotations

from tests.db.test_feeds import Page, Server, ftc_file, server
from tests.e2e.conftest import App

__all__ = ["server"]  # the loopback HTTP server fixture, shared with the database tests


def test_a_caller_the_ftc_file_names_is_rejected_and_the_log_says_which_feed(
    door_app: App, server: Server
) -> None:
    # 10-digit numbers, as the FTC writes them; the second reported twice.
    server.pages["/dnc.csv"] = Page(ftc_file("5550900060", "5550900061", "5550900061"))
    name = f"ftc-{door_app.door}"
    r = door_app.cli(
        "feed",
        "add",
        name,
        f"{server.base}/dnc.csv",
        "--format",
        "ftc-dnc",
        "--relax",
        "--for",
        "237",
    )
    assert r.code == 0, r.err
    r = door_app.cli("feed", "update", name)
    assert r.code == 0, r.out + r.err

    rejected = door_app.call("+15550900061", "237")
    assert rejected.status_line == "607 Unwanted"
    assert rejected.headers("Reason") == ["Q.850;cause=21"]
    door_app.wait_log(f"to 237: rejected 607, feed {name}: 2 reports since ")
    # Not in the file, or to another extension (the feed is 237's): it rings.
    assert door_app.call("+15550900062", "237").status_line == "200 OK"
    assert door_app.call("+15550900060", "238").status_line == "200 OK"
    assert door_app.cli("feed", "remove", name).code == 0
    assert door_app.call("+15550900061", "237").status_line == "200 OK"
