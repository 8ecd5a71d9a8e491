"""Times for the words as the client wrote them, when the front end rewrote some of them."""

from __future__ import annotations

from voxvault.synthesis.streaming import OriginalTimer


def _spoken(words: list[str], step: float = 0.5) -> list[tuple[str, float, float]]:
    return [(w, i * step, (i + 1) * step) for i, w in enumerate(words)]


def test_rewritten_run_shares_the_time_of_what_it_became() -> None:
    spoken = _spoken(["it", "costs", "three", "dollars", "fifty", "today"])
    timer = OriginalTimer(["it", "costs", "$3.50", "today"], [w for w, _, _ in spoken])
    got = timer.add(spoken[:3]) + timer.add(spoken[3:]) + timer.rest()
    assert [w for w, _, _ in got] == ["it", "costs", "$3.50", "today"]
    assert got[2][1:] == (1.0, 2.5)  # from "three" to "fifty"
    assert got[3][1:] == (2.5, 3.0)


def test_written_word_waits_until_all_it_became_is_timed() -> None:
    spoken = _spoken(["meet", "at", "ten", "thirty"])
    timer = OriginalTimer(["meet", "at", "10:30"], [w for w, _, _ in spoken])
    assert [w for w, _, _ in timer.add(spoken[:3])] == ["meet", "at"]
    assert [w for w, _, _ in timer.add(spoken[3:])] == ["10:30"]


def test_dropped_word_gets_a_zero_length_time_and_nothing_is_lost() -> None:
    spoken = _spoken(["fish", "and", "chips"])
    timer = OriginalTimer(["fish", "&", "chips", "~"], ["fish", "and", "chips"])
    got = timer.add(spoken) + timer.rest()
    assert [w for w, _, _ in got] == ["fish", "&", "chips", "~"]
    assert got[-1][1] == got[-1][2] == 1.5
    assert [a for _, a, _ in got] == sorted(a for _, a, _ in got)
