"""A Feed takes a poll's entries and a stream's rows alike: the fast path agrees with building a Job."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridllm_nb.api.poller import Poller, PollSettings

from ..fakes import FakeClock


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"vmStatus": st.sampled_from(["running", "completed", "", "queued"]),
                 "states": st.fixed_dictionaries(
                     {"default": st.fixed_dictionaries(
                         {"status": st.sampled_from(["running", "RUNNING", "error", "cancelled", "done", "", "odd"]),
                          "log": st.sampled_from(["", "a", "a b", "a b c", "x"]),
                          "message": st.sampled_from(["", "why"])})})}),
            st.recursive(st.none() | st.integers() | st.text(max_size=3),
                         lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
                             st.sampled_from(["states", "default", "status", "log", "vmStatus", "other"]),
                             inner, max_size=3), max_leaves=8),
        ),
        max_size=8,
    )
)
def test_the_fast_path_and_the_job_path_see_every_answer_alike(entries: list) -> None:
    """``Feed._poll`` (no Job) and ``_unchanged`` + ``_apply(Job.from_api(...))`` (the old path) agree."""
    from gridllm_nb.api.feed import Feed, raw_status_and_log
    from gridllm_nb.api.jobs import Job

    poller = Poller(PollSettings(), clock=FakeClock())
    fast = Feed(poller._forget, None, "j", tag="t", started=0.0, deadline=None)  # type: ignore[arg-type]
    slow = Feed(poller._forget, None, "j", tag="t", started=0.0, deadline=None)  # type: ignore[arg-type]
    for n, entry in enumerate(entries):
        if entry is None:
            continue  # the tick counts a null entry as a missing job
        job = Job.from_api("j", entry)
        assert raw_status_and_log(entry) == (job.raw_status, job.log)
        if fast.done:
            break
        took = fast._poll(entry, float(n))
        if not (slow.missing == 0 and slow._unchanged(entry)):
            assert took == slow._apply(Job.from_api("j", entry, slow.state), float(n))
        else:
            assert took is False
        for name in ("state", "text", "raw_status", "error"):
            assert getattr(fast, name) == getattr(slow, name)
        assert fast.job == slow.job
    assert list(fast._updates) == list(slow._updates)
