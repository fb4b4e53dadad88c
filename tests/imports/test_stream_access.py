"""A progress stream already open ends with the right to read it: signed out, deactivated,
token revoked. Else it went on telling the import's progress and outcome for minutes.

The import is held running by a lock on the catalog while its stream is opened and the right
ended, then let finish: a stream still open would tell `done`.
"""

from contextlib import ExitStack

import pytest

from tests.accounts.conftest import CSRF_FIELD, signed_in
from tests.conftest import http_client
from tests.helpers import wait_for_job

from .conftest import TABLE_LOCK
from .test_event_streams import Stream, running_job

VIEWER_ID = 3  # the standard viewer's account


def sign_out(browser, http) -> None:
    token = CSRF_FIELD.search(browser.get("/account").text).group(1)
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302


def deactivate(browser, http) -> None:
    assert http.patch(f"/api/users/{VIEWER_ID}", json={"active": False}).status_code == 200


def revoke_token(program, http) -> None:
    (token,) = program.get("/api/tokens").json()["items"]
    assert http.delete(f"/api/tokens/{token['id']}").status_code == 204


@pytest.mark.parametrize(
    ("caller", "end"),
    [("session", sign_out), ("session", deactivate), ("token", revoke_token)],
    ids=["signed out", "deactivated", "token revoked"],
)
def test_an_open_progress_stream_ends_with_the_right_to_read_it(
    live_server, live_worker, holding, http, accounts, caller, end
):
    viewer = accounts["viewer"]
    if caller == "session":
        reader = signed_in(live_server, viewer.email)
    else:
        reader = http_client(live_server, viewer.token)
    with ExitStack() as streams:
        streams.callback(reader.close)
        with holding(TABLE_LOCK):
            job_id = running_job(http)
            stream = Stream(streams, reader, job_id)
            assert stream.next_event()[0] == "progress"

            end(reader, http)

        assert wait_for_job(http, job_id)["status"] == "completed"
        assert stream.rest() == []  # the stream ended, without telling the outcome
        assert reader.get(f"/api/imports/{job_id}/events").status_code == 401
