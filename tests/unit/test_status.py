from hypothesis import given
from hypothesis import strategies as st

from noded.contract.status import Phase, Status, format_status, parse_status


def test_round_trip_examples():
    s = Status(Phase.INITIALIZING, 0.42, "loading weights")
    assert format_status(s) == "initializing 42.0%: loading weights"
    assert parse_status(format_status(s)) == s
    assert parse_status("ready") == Status(Phase.READY)
    assert parse_status("error: RuntimeError: x: y") == Status(Phase.ERROR, None, "RuntimeError: x: y")


def test_foreign_text_is_not_ours():
    assert parse_status("") is None
    assert parse_status("Loading...") is None
    assert parse_status("running 5%") is None


@given(st.sampled_from(list(Phase)), st.one_of(st.none(), st.floats(0, 1)), st.text(max_size=80))
def test_round_trip_property(phase, fraction, text):
    parsed = parse_status(format_status(Status(phase, fraction, text)))
    assert parsed is not None and parsed.phase is phase
    if fraction is None:
        assert parsed.fraction is None
    else:
        assert abs(parsed.fraction - fraction) <= 0.0006
    assert parsed.text == " ".join(text.split())
