"""The submission's form reading: typed options, parsed once, and a 400 for anything else."""

from __future__ import annotations

import pytest

from percolate_reading.contract.jobs import JobOptions
from percolate_reading.contract.subjects import Tier
from percolate_reading.gateway.submission import JobRequest, Refused, read_form


def test_fields_become_a_typed_request() -> None:
    request = read_form(
        {
            "callback_url": "https://example.com/hook",
            "tier": "large",
            "ocr_enabled": "FALSE",
            "language": "de",
        }
    )
    assert request == JobRequest(
        "https://example.com/hook", Tier.LARGE, JobOptions(ocr_enabled=False, language="de")
    )
    assert read_form({}) == JobRequest(None, None, JobOptions())
    assert read_form({"ocr_enabled": "1", "password": ""}).options == JobOptions(ocr_enabled=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"priority": "4"}, "unknown form fields: priority"),
        ({"ocr_enabled": "yes"}, "ocr_enabled must be true or false"),
        ({"tier": "huge"}, "tier must be one of"),
        ({"callback_url": "ftp://example.com"}, "callback_url must be an http(s) URL"),
    ],
)
def test_bad_fields_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(Refused) as refused:
        read_form(fields)
    assert refused.value.status == 400
    assert refused.value.message.startswith(message)
