"""fal/sse.py: the incremental SSE decoder (WHATWG line and field rules)."""

from __future__ import annotations

import pytest

from fal_openai_proxy.fal.sse import SSEDecoder


def decode(*chunks: bytes) -> list[bytes]:
    decoder = SSEDecoder()
    events: list[bytes] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


MIXED = (
    b": keep-alive\n\n"
    b"event: event\r\n"
    b"id: 7\r\n"
    b"retry: 1000\r\n"
    b'data: {"output": "a"}\r\n'
    b"\r\n"
    b"data:first\rdata: second\r\r"
    b"data: x\n"
    b"data\n"
    b"data: y\n"
    b"\n\n\n"
    b'data: {"output": "\xc3\xa9"}\r\n\r\n'
    b"data: tail"
)
MIXED_EVENTS = [b'{"output": "a"}', b"first\nsecond", b"x\n\ny", b'{"output": "\xc3\xa9"}', b"tail"]


@pytest.mark.parametrize(
    "raw",
    [b"data: a\n\ndata: b\n\n", b"data: a\r\n\r\ndata: b\r\n\r\n", b"data: a\r\rdata: b\r\r"],
    ids=["LF", "CRLF", "CR"],
)
def test_line_endings(raw: bytes) -> None:
    assert decode(raw) == [b"a", b"b"]


def test_lf_events_are_returned_by_the_feed_that_completes_them() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b") == [b"a"]
    assert decoder.feed(b"\n\n") == [b"b"]


def test_crlf_split_across_feeds_is_one_line_end() -> None:
    # Were the CR taken as a line end on its own, the LF would be a blank line and
    # "a" and "b" would be two events.
    decoder = SSEDecoder()
    events = decoder.feed(b"data: a\r")
    events += decoder.feed(b"\ndata: b\r\n\r\n")
    assert events + decoder.close() == [b"a\nb"]


def test_mixed_stream_whole() -> None:
    assert decode(MIXED) == MIXED_EVENTS


def test_byte_by_byte_equals_whole() -> None:
    assert decode(*(MIXED[i : i + 1] for i in range(len(MIXED)))) == MIXED_EVENTS


def test_every_two_way_split_equals_whole() -> None:
    for cut in range(len(MIXED) + 1):
        assert decode(MIXED[:cut], MIXED[cut:]) == MIXED_EVENTS, cut


def test_multiline_data_joined_with_newline() -> None:
    assert decode(b"data: one\ndata: two\ndata: three\n\n") == [b"one\ntwo\nthree"]


def test_comments_and_other_fields_are_ignored() -> None:
    raw = b": ping\nevent: message\nid: 1\nretry: 5\ndatum: no\nDATA: no\ndata: yes\n\n"
    assert decode(raw) == [b"yes"]


def test_comment_followed_by_blank_line_dispatches_nothing() -> None:
    assert decode(b": keep-alive\n\n: keep-alive\n\n") == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"data: v\n\n", b"v"),
        (b"data:v\n\n", b"v"),
        (b"data:  v\n\n", b" v"),
        (b"data: v \n\n", b"v "),
        (b"data\ndata: v\n\n", b"\nv"),
        (b"data: a: b\n\n", b"a: b"),
    ],
)
def test_data_value_loses_one_leading_space(raw: bytes, expected: bytes) -> None:
    assert decode(raw) == [expected]


def test_close_flushes_unterminated_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\ndata: tail") == [b"one"]
    assert decoder.close() == [b"tail"]


def test_close_flushes_event_missing_only_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail\r\n") == []
    assert decoder.close() == [b"tail"]


def test_close_on_clean_end_returns_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n") == [b"a"]
    assert decoder.close() == []


def test_close_with_trailing_comment_returns_nothing() -> None:
    assert decode(b"data: a\n\n: bye") == [b"a"]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode(b"\n\n\r\n\r\r", b"data: a\n\n\n\n\n") == [b"a"]


# Tolerance beyond WHATWG: fal's events are single JSON objects, so a `data:` line that holds a
# whole object is one event even without the blank line that should follow it.


def test_json_events_without_blank_lines_are_separate_events() -> None:
    raw = b'data: {"output": "a"}\ndata: {"output": "ab"}\ndata: {"output": "abc"}\n'
    assert decode(raw) == [b'{"output": "a"}', b'{"output": "ab"}', b'{"output": "abc"}']


def test_json_events_without_blank_lines_split_anywhere() -> None:
    raw = b'event: event\ndata: {"output": "a"}\ndata: {"output": "ab"}\n\ndata: {"x": 1}\n'
    whole = decode(raw)
    assert whole == [b'{"output": "a"}', b'{"output": "ab"}', b'{"x": 1}']
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == whole, cut


def test_a_whole_json_event_is_delivered_without_waiting_for_the_next() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"output": "a"}\n') == [b'{"output": "a"}']
    assert decoder.feed(b"\n") == []  # its late blank line adds nothing


def test_json_split_over_data_lines_is_still_one_event() -> None:
    raw = b'data: {"output":\ndata: "a"}\n\n'
    assert decode(raw) == [b'{"output":\n"a"}']


def test_a_line_that_only_looks_whole_is_not_cut() -> None:
    raw = b'data: {"a": {"b": 1}\ndata: }\n\n'
    assert decode(raw) == [b'{"a": {"b": 1}\n}']
