"""``StreamText``: the text crosses the wire once, as deltas; a lost front end is repaired."""

from __future__ import annotations

from gridllm_nb.widgets.streamtext import StreamText, utf16_len

from ..conftest import Wire


def test_stream_text_sends_deltas_a_reset_once_and_nothing_when_unchanged(wire: Wire) -> None:
    st = StreamText("ab")
    assert wire.of(st, "comm_open")[0]["state"]["text"] == "ab"
    st.value = "abc"
    st.value = "abc"
    st.value = "abc🎉d"
    st.value = "restarted"  # not a continuation: the full new text, once
    st.value = "restarted!"
    assert wire.custom(st) == [{"append": "c", "at": 2}, {"append": "🎉d", "at": 3},
                               {"reset": "restarted"}, {"append": "!", "at": 9}]
    assert wire.updates(st) == []
    # views made later, and a reloading page, get the current text from the state
    assert st.get_state()["text"] == "restarted!" and st.get_state("text") == {"text": "restarted!"}


def test_stream_text_repairs_a_front_end_that_missed_a_message(wire: Wire) -> None:
    st = StreamText()
    st.value = "hello"
    before = len(wire.custom(st))
    st._handle_custom_msg({"have": 5}, [])  # a front end in step: nothing to send
    assert len(wire.custom(st)) == before
    st._handle_custom_msg({"have": 0}, [])  # loaded after the first append: the text once
    st._handle_custom_msg({"resync": 3}, [])  # an offset that disagreed
    assert wire.custom(st)[before:] == [{"reset": "hello"}, {"reset": "hello"}]


def test_utf16_len_counts_as_javascript_does() -> None:
    assert utf16_len("a") == 1 and utf16_len("é") == 1 and utf16_len("🎉") == 2
