"""cdp_logging.encoding: any Python value as JSON, and the API's timestamp and id formats."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import os
import subprocess
import sys
import time
import uuid
from collections import OrderedDict, namedtuple
from pathlib import PurePosixPath
from typing import Any

import pytest

from cdp_logging import encoding
from cdp_logging.encoding import encode, iso_from_datetime, iso_from_epoch, new_message_id, now_iso


class Plan(enum.Enum):
    FREE = "free"
    PRO = 2


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Address:
    city: str
    since: dt.date
    tags: frozenset = frozenset()


Point = namedtuple("Point", "x y")


class Opaque:
    def __str__(self) -> str:
        return "opaque-thing"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def strict_loads(data: bytes) -> Any:
    """Parse as a strict JSON parser would: UTF-8 only, no NaN or Infinity."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(data.decode("utf-8"), parse_constant=refuse)


def round_trip(value: Any) -> Any:
    return strict_loads(encode({"value": value}))["value"]


TABLE = [
    ("aware datetime", dt.datetime(2024, 5, 1, 12, 30, 0, 123000, tzinfo=dt.timezone.utc), "2024-05-01T12:30:00.123000+00:00"),
    ("naive datetime", dt.datetime(2024, 5, 1, 12, 30), "2024-05-01T12:30:00"),
    ("date", dt.date(2024, 5, 1), "2024-05-01"),
    ("time", dt.time(8, 15, 30), "08:15:30"),
    ("decimal", decimal.Decimal("19.99"), 19.99),
    ("integral decimal", decimal.Decimal("7"), 7),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
    ("enum", Plan.FREE, "free"),
    ("enum with int value", Plan.PRO, 2),
    ("int enum", Level.HIGH, 3),
    ("set", {"a"}, ["a"]),
    ("frozenset", frozenset([1]), [1]),
    ("tuple", (1, "two", None), [1, "two", None]),
    ("namedtuple", Point(1, 2), [1, 2]),
    ("dataclass", Address("Oslo", dt.date(2020, 1, 2)), {"city": "Oslo", "since": "2020-01-02", "tags": []}),
    ("bytes", b"caf\xc3\xa9", "café"),
    ("bytearray", bytearray(b"raw"), "raw"),
    ("nan", float("nan"), None),
    ("infinity", float("inf"), None),
    ("minus infinity", float("-inf"), None),
    ("decimal nan", decimal.Decimal("NaN"), None),
    ("decimal infinity", decimal.Decimal("-Infinity"), None),
    ("ordered dict", OrderedDict([("b", 1), ("a", 2)]), {"b": 1, "a": 2}),
    ("path", PurePosixPath("/tmp/x"), "/tmp/x"),
    ("complex", 1 + 2j, "(1+2j)"),
    ("object", Opaque(), "opaque-thing"),
    ("nested", {"when": [dt.date(2024, 1, 1), {Plan.FREE}]}, {"when": ["2024-01-01", ["free"]]}),
]


@pytest.mark.parametrize(("value", "expected"), [(v, e) for _, v, e in TABLE], ids=[n for n, _, _ in TABLE])
def test_any_value_is_encoded_as_the_table_says(value: Any, expected: Any) -> None:
    assert round_trip(value) == expected


def test_decimal_is_a_json_number_with_every_digit_kept() -> None:
    data = encode({"price": decimal.Decimal("12.3400"), "big": decimal.Decimal("123456789012345678901234567890.5")})
    parsed = json.loads(data, parse_float=decimal.Decimal)
    assert parsed == {"price": decimal.Decimal("12.3400"), "big": decimal.Decimal("123456789012345678901234567890.5")}


def test_nan_and_infinities_become_null_and_the_body_stays_valid_json() -> None:
    data = encode({"a": float("nan"), "b": [float("inf"), -float("inf")], "c": decimal.Decimal("sNaN")})
    assert strict_loads(data) == {"a": None, "b": [None, None], "c": None}


def test_non_string_keys_become_strings() -> None:
    value = {1: "int", 2.5: "float", None: "none", dt.date(2024, 1, 2): "date",
             Plan.FREE: "enum", uuid.UUID(int=1): "uuid"}
    assert strict_loads(encode(value)) == {
        "1": "int", "2.5": "float", "null": "none", "2024-01-02": "date",
        "free": "enum", "00000000-0000-0000-0000-000000000001": "uuid",
    }
    assert strict_loads(encode({True: "yes", False: "no"})) == {"true": "yes", "false": "no"}


def test_keys_json_cannot_express_become_their_text() -> None:
    assert strict_loads(encode({(1, 2): "tuple key", "plain": 1})) == {"(1, 2)": "tuple key", "plain": 1}


def test_a_value_whose_str_raises_is_still_sent_with_a_placeholder() -> None:
    assert "Unprintable" in round_trip(Unprintable())


def test_no_field_is_dropped_for_its_type() -> None:
    payload = {name: value for name, value, _ in TABLE}
    payload["unprintable"] = Unprintable()
    payload["huge int"] = 2**80
    assert set(strict_loads(encode(payload))) == set(payload)


def test_integers_beyond_64_bits_are_kept_exactly() -> None:
    assert round_trip(2**80) == 2**80
    assert round_trip(-(2**70)) == -(2**70)


def test_the_fallback_encoder_still_follows_the_table() -> None:
    # A value orjson refuses (an int over 64 bits) sends the whole payload down the slow path.
    value = {"huge": 2**70, "nan": float("nan"), "when": dt.datetime(2024, 5, 1), "tags": {"x"},
             "price": decimal.Decimal("1.5"), "raw": b"ab", 3: "int key", "plan": Plan.PRO}
    assert strict_loads(encode(value)) == {
        "huge": 2**70, "nan": None, "when": "2024-05-01T00:00:00", "tags": ["x"],
        "price": 1.5, "raw": "ab", "3": "int key", "plan": 2,
    }


def test_a_circular_reference_is_sent_as_a_placeholder_not_lost() -> None:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    assert strict_loads(encode({"loop": loop})) == {"loop": {"name": "loop", "self": "<circular reference>"}}


def test_strings_with_lone_surrogates_stay_valid_utf8_json() -> None:
    # What os.fsdecode gives for a file name that is not UTF-8.
    name = b"report-\xff.csv".decode("utf-8", "surrogateescape")
    data = encode({"file": name, "note": "ok é"})
    parsed = strict_loads(data)
    assert parsed["note"] == "ok é"
    assert parsed["file"].startswith("report-") and parsed["file"].endswith(".csv")


def test_encoding_is_compact_utf8() -> None:
    assert encode({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'.encode()


# -- timestamps and ids ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, "1970-01-01T00:00:00.000Z"), (0.5, "1970-01-01T00:00:00.500Z"),
     (1714564800.999, "2024-05-01T12:00:00.999Z"), (1714564801.0, "2024-05-01T12:00:01.000Z")],
)
def test_epoch_seconds_become_iso_utc_with_milliseconds(seconds: float, expected: str) -> None:
    assert iso_from_epoch(seconds) == expected


def test_datetimes_become_iso_utc_with_milliseconds(local_time_is_not_utc: None) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    assert iso_from_datetime(dt.datetime(2024, 5, 1, 9, 0, 0, 7000, tzinfo=tokyo)) == "2024-05-01T00:00:00.007Z"
    # Naive: local time (nine hours ahead here), as datetime.timestamp() reads it.
    assert iso_from_datetime(dt.datetime(2024, 5, 1, 9, 0)) == "2024-05-01T00:00:00.000Z"


def test_now_is_the_current_utc_time() -> None:
    stamp = dt.datetime.fromisoformat(now_iso().replace("Z", "+00:00"))
    assert abs((stamp - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 5


#: Forks in a fresh interpreter: the test process has threads of other tests (servers), and a
#: fork while threads run may deadlock the child (3.12 warns about it). Warnings are errors.
_FORK_IDS = """
import os, threading, warnings
warnings.simplefilter("error")
from cdp_logging.encoding import new_message_id
new_message_id()  # the parent has ids made ahead of use
assert threading.active_count() == 1, threading.enumerate()
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:  # the child: send its ids to the parent, leave at once
    try:
        os.write(write_end, ",".join(new_message_id() for _ in range(300)).encode())
    finally:
        os._exit(0)
os.close(write_end)
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
with os.fdopen(read_end, "rb") as pipe:
    print(pipe.read().decode())
print(",".join(new_message_id() for _ in range(300)))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_ids_of_its_own() -> None:
    ran = subprocess.run([sys.executable, "-c", _FORK_IDS], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    child, parent = (set(line.split(",")) for line in ran.stdout.splitlines())
    assert len(child) == len(parent) == 300 and not child & parent


def test_message_ids_are_unique_version_4_uuids() -> None:
    ids = [new_message_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:200]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def test_timestamps_of_every_millisecond_of_now_match_the_calendar() -> None:
    # The current second's stamps come from a table made once; each must be the time itself.
    start = float(int(time.time()))
    for millisecond in range(0, 1000, 7):
        seconds = start + millisecond / 1000 + 0.0004
        expected = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert iso_from_epoch(seconds) == expected


def test_old_seconds_are_stamped_without_replacing_the_table_of_now() -> None:
    iso_from_epoch(time.time())
    table = encoding._recent_stamps
    assert iso_from_epoch(1714564800.25) == "2024-05-01T12:00:00.250Z"
    assert iso_from_epoch(-0.5) == "1969-12-31T23:59:59.500Z"
    assert encoding._recent_stamps is table
