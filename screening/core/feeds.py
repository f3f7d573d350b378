"""Reading spam feeds as their bytes arrive: the FTC's daily complaint file, a plain list of
numbers, or our own CSV export. Pure (no I/O): feed it chunks, get the numbers reported in
them and counts of what was skipped and why. Lines are bounded, so memory is too."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable

from screening.core.errors import InvalidInput
from screening.core.numbers import classify

FORMATS = ("ftc-dnc", "numbers", "csv")
#: The FTC's Do Not Call complaint file, exactly: its columns in this order.
FTC_HEADER = (
    "Company_Phone_Number",
    "Created_Date",
    "Violation_Date",
    "Consumer_City",
    "Consumer_State",
    "Consumer_Area_Code",
    "Subject",
    "Recorded_Message_Or_Robocall",
)
#: No line of any format is longer; a longer one is skipped (and never held whole).
MAX_LINE = 4096
#: The most distinct numbers one update takes; a bigger feed is refused whole (memory and
#: one transaction grow with them: about 200 MB and 37 s per million, measured).
MAX_NUMBERS = 2_000_000

# Why a row was skipped, as `feed show` and the update's summary print it.
BLANK = "blank number"
NOT_A_NUMBER = "not a number"
DUPLICATE = "duplicate row"
TOO_LONG = "line too long"
NOT_BLOCK = "not a block number"
SHORT = "too few columns"


class FeedFormatError(InvalidInput):
    """The body is not in the feed's format (its header is wrong): nothing is taken from it."""

    exit_code = 1


class Reader:
    """One update's body, chunk by chunk. `feed` and `close` return the numbers reported:
    for ftc-dnc one per complaint row (a number may come many times), for numbers and csv
    each number once (the update counts one report)."""

    def __init__(self, fmt: str, region: str) -> None:
        if fmt not in FORMATS:
            raise InvalidInput("format", f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
        self.format = fmt
        self.region = "US" if fmt == "ftc-dnc" else region
        self.rows = 0  # data rows read (header and comments not counted)
        self.skipped: Counter[str] = Counter()
        self._buffer = b""
        self._overlong = False  # inside a line too long to keep: drop until its end
        self._first = True  # the next line is the file's first
        self._columns: dict[str, int] | None = None  # csv: header name -> index
        self._seen: set[int | str] = set()  # ftc: row hashes; others: numbers

    def feed(self, data: bytes) -> list[str]:
        found: list[str] = []
        buffer = self._buffer + data
        start = 0  # lines are read by index: cutting the buffer at each was quadratic
        while (end := buffer.find(b"\n", start)) >= 0:
            line, start = buffer[start:end], end + 1
            if self._overlong:
                self._overlong = False
                continue
            if len(line) > MAX_LINE:
                self.skipped[TOO_LONG] += 1
                continue
            found.extend(self._line(line))
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_LINE:
            self._buffer = b""
            if not self._overlong:
                self._overlong = True
                self.skipped[TOO_LONG] += 1
        return found

    def close(self) -> list[str]:
        """The last line, if the body did not end with a newline; checks a header came."""
        line, self._buffer = self._buffer, b""
        found = [] if self._overlong or not line else list(self._line(line))
        if self.format != "numbers" and self._first:
            raise FeedFormatError("format", f"an empty body, not a {self.format} file")
        return found

    def _line(self, raw: bytes) -> Iterable[str]:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if self._first:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            return ()
        if self._first:
            self._first = False
            if self.format == "ftc-dnc":
                self._ftc_header(text)
                return ()
            if self.format == "csv":
                self._csv_header(text)
                return ()
        if self.format == "numbers":
            return self._number_line(text)
        self.rows += 1
        cells = next(csv.reader([text]), [])
        if self.format == "ftc-dnc":
            return self._ftc_row(text, cells)
        return self._csv_row(cells)

    def _ftc_header(self, text: str) -> None:
        cells = tuple(c.strip() for c in next(csv.reader([text]), []))
        if cells != FTC_HEADER:
            raise FeedFormatError(
                "format", f"not an FTC DNC complaint file: its header is {text[:120]!r}"
            )

    def _ftc_row(self, text: str, cells: list[str]) -> Iterable[str]:
        if len(cells) < len(FTC_HEADER):
            self.skipped[SHORT] += 1
            return ()
        digits = cells[0].strip()
        if not digits:
            self.skipped[BLANK] += 1
            return ()
        if not digits.isascii() or not digits.isdigit():
            self.skipped[NOT_A_NUMBER] += 1
            return ()
        if len(digits) != 10:
            self.skipped[f"{len(digits)} digits"] += 1
            return ()
        key = hash(text)
        if key in self._seen:
            self.skipped[DUPLICATE] += 1
            return ()
        self._seen.add(key)
        self._bounded()
        return self._normalised(digits)

    def _number_line(self, text: str) -> Iterable[str]:
        text = text.split("#", 1)[0].strip()
        if not text:
            return ()  # a comment or a blank line is not a row
        self.rows += 1
        return self._once(text)

    def _csv_header(self, text: str) -> None:
        cells = [c.strip().lower() for c in next(csv.reader([text]), [])]
        if "number" not in cells or "kind" not in cells:
            raise FeedFormatError("format", f"not a screening export: its header is {text[:120]!r}")
        self._columns = {name: i for i, name in enumerate(cells)}

    def _csv_row(self, cells: list[str]) -> Iterable[str]:
        assert self._columns is not None
        kind, number = self._columns["kind"], self._columns["number"]
        if len(cells) <= max(kind, number):
            self.skipped[SHORT] += 1
            return ()
        if (cells[kind].strip() or "block") != "block" or cells[number].strip().endswith("*"):
            self.skipped[NOT_BLOCK] += 1  # allow rows, DND, policies, prefixes
            return ()
        if not cells[number].strip():
            self.skipped[NOT_BLOCK] += 1  # a caller-name entry
            return ()
        return self._once(cells[number])

    def _once(self, raw: str) -> Iterable[str]:
        found = list(self._normalised(raw))
        if found and found[0] in self._seen:
            self.skipped[DUPLICATE] += 1
            return ()
        self._seen.update(found)
        self._bounded()
        return found

    def _bounded(self) -> None:
        if len(self._seen) > MAX_NUMBERS:
            raise FeedFormatError(
                "feed", f"more than {MAX_NUMBERS:,} distinct numbers: refused whole"
            )

    def _normalised(self, raw: str) -> Iterable[str]:
        # Possible numbers only: a feed must not block "1", "100", "911" or an extension.
        number, possible = classify(raw, self.region)
        if number is None or not possible:
            self.skipped[NOT_A_NUMBER] += 1
            return ()
        return (number,)


def read_all(fmt: str, region: str, body: bytes, chunk: int = 1000) -> tuple[list[str], Reader]:
    """A whole body at once (tests, small files): the numbers and the reader's counts."""
    reader = Reader(fmt, region)
    found: list[str] = []
    for i in range(0, len(body), chunk):
        found += reader.feed(body[i : i + chunk])
    found += reader.close()
    return found, reader
