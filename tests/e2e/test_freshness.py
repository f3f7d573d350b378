"""Two app instances share one database, as two PBXs would: a change made by the CLI, an
import or a feature code is in force on both for the very next call, within 1 s."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import App
from tests.e2e.test_features import dial

pytestmark = pytest.mark.e2e

#: scripts/sandbox-conf/pjsip.conf: calls from this address enter Stasis(screening-b).
SECOND_PBX = "127.0.0.4"


@pytest.fixture
def two_apps(
    own_app: Callable[..., App], sandbox: dict[str, str], database_url: str, tmp_path: Path
) -> Iterator[tuple[App, App]]:
    first = own_app(database_url)
    second = App(sandbox, tmp_path / "b", database_url, SCREENING_ARI_APP="screening-b")
    (tmp_path / "b").mkdir(exist_ok=True)
    second.start()
    try:
        yield first, second
    finally:
        second.stop()


def statuses_right_after(
    change: Callable[[], object], apps: tuple[App, App], caller: str
) -> list[str]:
    """Make the change, then call through each instance at once; the calls must start
    within 1 s of the change returning."""
    first, second = apps
    change()
    done = time.monotonic()
    results = [
        first.call(caller, "201").status_line,
        second.call(caller, "201", source=SECOND_PBX).status_line,
    ]
    assert time.monotonic() - done < 1.0, "the calls did not start within 1 s of the change"
    return results


def test_cli_edits_reach_both_instances_for_the_next_call(two_apps: tuple[App, App]) -> None:
    first, second = two_apps
    caller = "+15550700001"
    assert first.call(caller, "201").status_line == "200 OK"
    assert second.call(caller, "201", source=SECOND_PBX).status_line == "200 OK"

    def block() -> None:
        assert first.cli("block", "add", caller).code == 0

    def unblock() -> None:
        assert first.cli("block", "remove", caller).code == 0

    assert statuses_right_after(block, two_apps, caller) == ["607 Unwanted", "607 Unwanted"]
    assert statuses_right_after(unblock, two_apps, caller) == ["200 OK", "200 OK"]
    # Each instance logged the call it decided: the second one really was the other app.
    assert "607" in second.log() and caller in second.log()


def test_an_import_reaches_both_instances_for_the_next_call(
    two_apps: tuple[App, App], tmp_path: Path
) -> None:
    first, _ = two_apps
    csv = tmp_path / "rules.csv"
    csv.write_text("kind,number,code\nblock,+1555070*,608\n")

    def load() -> None:
        r = first.cli("import", str(csv))
        assert r.code == 0, r.err

    assert statuses_right_after(load, two_apps, "+15550700077") == ["608 Rejected"] * 2


def test_a_feature_code_on_one_pbx_reaches_the_other(two_apps: tuple[App, App]) -> None:
    first, _ = two_apps
    # 201 turns do-not-disturb on from a phone of the first PBX; the second one honours it.
    assert (
        statuses_right_after(lambda: dial(first, "201", "*78"), two_apps, "+15550700002")
        == ["608 Rejected"] * 2
    )
    assert (
        statuses_right_after(lambda: dial(first, "201", "*79"), two_apps, "+15550700002")
        == ["200 OK"] * 2
    )
