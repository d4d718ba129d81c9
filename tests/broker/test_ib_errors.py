"""IB error table: required codes present, severities as documented, unknown codes surface as warnings."""

from __future__ import annotations

import json

import pytest

from trader.broker.ib_errors import IB_ERRORS, SEVERITIES, classify, error_to_dict, is_advisory
from trader.messaging.codec import packb, unpackb

REQUIRED = [
    100, 101, 102, 103, 110, 161, 162, 165, 200, 201, 202, 203, 321, 322, 326, 354, 366, 399, 404, 434, 502,
    504, 1100, 1101, 1102, 1300, 2100, 2103, 2104, 2105, 2106, 2107, 2108, 2109, 2110, 2119, 2137, 2157,
    2158, 10147, 10148, 10167, 10168, 10197,
]


@pytest.mark.parametrize("code", REQUIRED)
def test_required_codes_are_in_the_table(code):
    info = IB_ERRORS[code]
    assert info.code == code and info.known
    assert info.severity in SEVERITIES
    assert info.name.isupper() and info.meaning


@pytest.mark.parametrize(
    "code, severity",
    [
        (2104, "advisory"), (2106, "advisory"), (2107, "advisory"), (2108, "advisory"), (2119, "advisory"),
        (2158, "advisory"), (10167, "advisory"), (165, "advisory"),
        (1100, "connectivity"), (1101, "connectivity"), (1102, "connectivity"), (2110, "connectivity"),
        (2103, "connectivity"), (2105, "connectivity"), (2157, "connectivity"), (502, "connectivity"),
        (504, "connectivity"),
        (201, "order_rejected"), (203, "order_rejected"), (103, "order_rejected"), (110, "order_rejected"),
        (434, "order_rejected"),
        (326, "terminal"), (1300, "terminal"),
        (202, "warning"), (399, "warning"), (404, "warning"), (10168, "warning"), (10197, "warning"),
        (2109, "warning"), (161, "warning"),
    ],
)
def test_severity(code, severity):
    assert classify(code).severity == severity
    assert is_advisory(code) is (severity == "advisory")


def test_unknown_codes_are_warnings_carrying_the_raw_message():
    info = classify(98765, "Something new from IB")
    assert info.severity == "warning" and not info.known and not info.advisory
    assert info.message == "Something new from IB" and info.meaning == "Something new from IB"
    assert info.name == "IB_98765"
    assert classify(98765).meaning == "unknown IB code 98765"
    assert not is_advisory(98765)


def test_classify_attaches_ibs_message_without_changing_the_table():
    info = classify(2104, "Market data farm connection is OK:usfarm")
    assert info.advisory and info.message.endswith("usfarm")
    assert IB_ERRORS[2104].message == ""


def test_json_and_wire_forms():
    out = error_to_dict(201, "Order rejected - reason: no permissions", req_id=12)
    assert json.loads(json.dumps(out)) == out
    assert out["severity"] == "order_rejected" and out["req_id"] == 12 and out["name"] == "ORDER_REJECTED"
    info = classify(1100, "Connectivity between IB and Trader Workstation has been lost.")
    assert unpackb(packb(info)) == info
