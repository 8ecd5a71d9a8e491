"""Client errors never claim to be the server's fault (issue 25 item 7: 409 and 410 said ``server_error``)."""

from __future__ import annotations

import json

import pytest

from voxvault.api.errors import error_response


@pytest.mark.parametrize("status", [400, 404, 409, 410, 413, 422, 429])
def test_client_errors_are_not_server_errors(status: int) -> None:
    body = json.loads(bytes(error_response(status, "challenge_used", "spent").body))
    assert body["error"]["type"] != "server_error"
    assert body["error"]["code"] == "challenge_used"


def test_a_500_is_a_server_error() -> None:
    body = json.loads(bytes(error_response(500, "internal_error", "x").body))
    assert body["error"]["type"] == "server_error"
