"""The fake Slack answers the real slack_sdk the way Slack does, so tests built on it prove
something: refusals, paging, rate limits, signatures and metadata as documented by Slack."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from http.client import RemoteDisconnected

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from tests.fake_slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        running.add_user("U1", name="aino", real_name="Aino Virtanen", email="aino@example.fi")
        running.add_channel("C1", name="support-nordic")
        yield running


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.bot_token, base_url=fake.url)


def error_of(call: object) -> SlackApiError:
    with pytest.raises(SlackApiError) as raised:
        call()  # type: ignore[operator]
    return raised.value


def test_a_missing_or_wrong_token_is_refused_with_slacks_error_codes(fake: FakeSlack) -> None:
    missing = error_of(lambda: WebClient(base_url=fake.url).auth_test())
    wrong = error_of(lambda: WebClient(token="xoxb-wrong", base_url=fake.url).auth_test())
    assert (missing.response.status_code, missing.response["error"]) == (200, "not_authed")
    assert (wrong.response.status_code, wrong.response["error"]) == (200, "invalid_auth")
    assert [call.error for call in fake.calls] == ["not_authed", "invalid_auth"]


def test_auth_test_names_the_bot(client: WebClient, fake: FakeSlack) -> None:
    answer = client.auth_test()
    assert (answer["user_id"], answer["bot_id"], answer["team_id"]) == ("UBOT", "BBOT", "T1")


def test_a_dm_is_the_same_channel_each_time_and_posting_to_a_user_id_lands_there(
    client: WebClient, fake: FakeSlack
) -> None:
    first = client.conversations_open(users="U1")["channel"]["id"]
    again = client.conversations_open(users="U1")
    assert again["channel"]["id"] == first and again["already_open"] is True
    posted = client.chat_postMessage(channel="U1", text="hei")
    assert posted["channel"] == first
    assert [m["text"] for m in fake.messages(first)] == ["hei"]
    unknown = error_of(lambda: client.conversations_open(users="U404"))
    assert unknown.response["error"] == "user_not_found"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_refusals_change_nothing(client: WebClient, fake: FakeSlack) -> None:
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    refusals = [
        error_of(lambda: client.chat_postMessage(channel="C404", text="x")),
        error_of(lambda: client.chat_postMessage(channel="C1")),
        error_of(lambda: client.chat_postMessage(channel="C1", text="x", blocks=too_long)),
    ]
    assert [error.response["error"] for error in refusals] == [
        "channel_not_found",
        "no_text",
        "invalid_blocks",
    ]
    assert fake.messages("C1") == []


def test_ts_values_strictly_increase_and_update_marks_the_message_edited(
    client: WebClient, fake: FakeSlack
) -> None:
    stamps = [client.chat_postMessage(channel="C1", text=str(n))["ts"] for n in range(20)]
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 20
    assert abs(float(stamps[0]) - time.time()) < 60
    client.chat_update(channel="C1", ts=stamps[0], text="changed")
    [first] = [m for m in fake.messages("C1") if m["ts"] == stamps[0]]
    assert first["text"] == "changed" and first["edited"]["user"] == "UBOT"
    missing = error_of(lambda: client.chat_update(channel="C1", ts="1.000001", text="x"))
    assert missing.response["error"] == "message_not_found"


def test_history_pages_through_250_messages_newest_first_each_exactly_once(
    client: WebClient, fake: FakeSlack
) -> None:
    posted = [fake.post("C1", f"message {n}", user="U1") for n in range(250)]
    seen: list[str] = []
    pages = 0
    for page in client.conversations_history(channel="C1", limit=100):
        pages += 1
        seen.extend(message["ts"] for message in page["messages"])
    assert pages == 3
    assert seen == list(reversed(posted))


def test_history_bounds_are_exclusive_unless_inclusive(client: WebClient, fake: FakeSlack) -> None:
    a, b, c = (fake.post("C1", text, user="U1") for text in "abc")
    between = client.conversations_history(channel="C1", oldest=a, latest=c)
    assert [m["ts"] for m in between["messages"]] == [b]
    inclusive = client.conversations_history(channel="C1", oldest=a, latest=c, inclusive=True)
    assert [m["ts"] for m in inclusive["messages"]] == [c, b, a]


def test_thread_replies_stay_out_of_history_and_page_in_replies(
    client: WebClient, fake: FakeSlack
) -> None:
    parent = fake.post("C1", "question", user="U1")
    replies = [fake.post("C1", f"reply {n}", user="UBOT", thread_ts=parent) for n in range(5)]
    [top] = client.conversations_history(channel="C1")["messages"]
    assert top["ts"] == parent
    assert (top["reply_count"], top["latest_reply"], top["reply_users"]) == (
        5,
        replies[-1],
        ["UBOT"],
    )
    seen = [
        message["ts"]
        for page in client.conversations_replies(channel="C1", ts=parent, limit=2)
        for message in page["messages"]
    ]
    assert seen == [parent, *replies]
    gone = error_of(lambda: client.conversations_replies(channel="C1", ts="1.000001"))
    assert gone.response["error"] == "thread_not_found"


def test_metadata_comes_back_only_with_include_all_metadata(
    client: WebClient, fake: FakeSlack
) -> None:
    metadata = {"event_type": "inbox_ping", "event_payload": {"key": "assign:1:1:aino"}}
    client.chat_postMessage(channel="C1", text="ping", metadata=metadata)
    [plain] = client.conversations_history(channel="C1")["messages"]
    [full] = client.conversations_history(channel="C1", include_all_metadata=True)["messages"]
    assert "metadata" not in plain
    assert full["metadata"] == metadata


def test_a_429_raises_with_retry_after_and_changes_nothing(
    client: WebClient, fake: FakeSlack
) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    error = error_of(lambda: client.chat_postMessage(channel="C1", text="x"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"
    assert fake.messages("C1") == []
    assert [(c.method, c.status) for c in fake.calls] == [("chat.postMessage", 429)]


def test_slack_sdks_rate_limit_handler_waits_out_retry_after_and_succeeds(
    fake: FakeSlack,
) -> None:
    client = WebClient(token=fake.bot_token, base_url=fake.url)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    answer = client.chat_postMessage(channel="C1", text="x")
    assert answer["ok"] is True
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]
    assert len(fake.messages("C1")) == 1


def test_posts_beyond_a_channels_limit_are_answered_429_and_other_channels_go_on(
    client: WebClient, fake: FakeSlack
) -> None:
    fake.add_channel("C2", name="other")
    fake.limit_posts_per_channel(5, burst=2)  # a post every 0.2 s, two at once
    client.chat_postMessage(channel="C1", text="1")
    client.chat_postMessage(channel="C1", text="2")
    error = error_of(lambda: client.chat_postMessage(channel="C1", text="3"))
    assert error.response.status_code == 429 and error.response.headers["Retry-After"] == "1"
    client.chat_postMessage(channel="C2", text="elsewhere")
    time.sleep(0.25)
    client.chat_postMessage(channel="C1", text="3")
    assert [m["text"] for m in fake.messages("C1")] == ["1", "2", "3"]


def test_a_5xx_is_an_html_page_that_slack_sdk_raises_on(client: WebClient, fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", status=503)
    error = error_of(lambda: client.chat_postMessage(channel="C1", text="x"))
    assert error.response.status_code == 503
    assert error.response["ok"] is False
    assert fake.messages("C1") == []


def test_a_late_answer_or_a_dropped_connection_still_takes_effect(fake: FakeSlack) -> None:
    impatient = WebClient(token=fake.bot_token, base_url=fake.url, timeout=1)
    impatient.retry_handlers.clear()
    fake.delay_next("chat.postMessage", 1.5)
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel="C1", text="late")
    fake.drop_next("chat.postMessage")
    with pytest.raises(RemoteDisconnected):
        impatient.chat_postMessage(channel="C1", text="dropped")
    assert fake.wait_idle()
    assert sorted(m["text"] for m in fake.messages("C1")) == ["dropped", "late"]


def test_fail_fraction_is_reproducible_by_seed(client: WebClient, fake: FakeSlack) -> None:
    def statuses() -> list[int]:
        fake.calls.clear()
        fake.fail_fraction("auth.test", 0.3, seed=42)
        for _ in range(40):
            with contextlib.suppress(SlackApiError):
                client.auth_test()
        return [call.status for call in fake.calls]

    first, second = statuses(), statuses()
    assert first == second
    assert 0 < first.count(429) < 40


def test_signatures_verify_with_slack_sdk_and_a_tampered_body_does_not(fake: FakeSlack) -> None:
    envelope = fake.event({"type": "message", "channel": "D1", "user": "U1", "text": "hei"})
    assert envelope["type"] == "event_callback" and envelope["event_id"].startswith("Ev")
    body = json.dumps(envelope).encode()
    headers = fake.sign(body)
    verifier = SignatureVerifier(signing_secret=fake.signing_secret)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body.replace(b"hei", b"moi"), headers)
    assert not verifier.is_valid_request(body, fake.sign(body, secret="another-secret"))
    stale = fake.sign(body, timestamp=int(time.time()) - 3600)
    assert not verifier.is_valid_request(body, stale)
