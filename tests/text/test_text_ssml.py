"""The supported SSML subset, and a clear invalid_ssml refusal for everything else."""

from __future__ import annotations

import pytest

from voxvault.errors import VoxError
from voxvault.text import Piece, TextFrontend


def plan(frontend: TextFrontend, body: str) -> list[Piece]:
    return frontend.plan(f"<speak>{body}</speak>")


def test_break_time_becomes_the_pause_after_the_piece(frontend: TextFrontend) -> None:
    pieces = plan(frontend, 'Hello there. <break time="750ms"/> General Kenobi.')
    assert [p.text for p in pieces] == ["Hello there.", "General Kenobi."]
    assert pieces[0].pause_after == pytest.approx(0.75)
    assert pieces[1].pause_after == 0.0


def test_break_strength_and_seconds(frontend: TextFrontend) -> None:
    pieces = plan(frontend, 'One <break strength="x-strong"/> two <break time="2s"/> three')
    assert [p.text for p in pieces] == ["One", "two", "three"]
    assert pieces[0].pause_after > 1.0
    assert pieces[1].pause_after == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("say_as", "spoken"),
    [
        ('<say-as interpret-as="characters">abc</say-as>', "A-B-C"),
        ('<say-as interpret-as="spell-out">R2</say-as>', "R two"),
        ('<say-as interpret-as="cardinal">1,234</say-as>', "one thousand two hundred thirty-four"),
        ('<say-as interpret-as="ordinal">3</say-as>', "third"),
        ('<say-as interpret-as="date">2026-11-22</say-as>', "November twenty-second, twenty twenty-six"),
        (
            '<say-as interpret-as="date" format="dmy">22/11/2026</say-as>',
            "November twenty-second, twenty twenty-six",
        ),
        ('<say-as interpret-as="telephone">555-0100</say-as>', "five five five, zero one zero zero"),
    ],
)
def test_say_as(frontend: TextFrontend, say_as: str, spoken: str) -> None:
    pieces = plan(frontend, f"Say {say_as} now.")
    assert " ".join(p.text for p in pieces) == f"Say {spoken} now."


def test_phoneme_inserts_the_given_ipa(frontend: TextFrontend) -> None:
    pieces = plan(frontend, 'I love <phoneme alphabet="ipa" ph="kˈOkəɹO">Kokoro</phoneme> models.')
    assert len(pieces) == 1
    assert "kˈOkəɹO" in pieces[0].phonemes
    assert pieces[0].text == "I love Kokoro models."


@pytest.mark.parametrize(("rate", "speed"), [("slow", 0.8), ("x-fast", 1.4), ("80%", 0.8), ("medium", 1.0)])
def test_prosody_rate_sets_piece_speed(frontend: TextFrontend, rate: str, speed: float) -> None:
    pieces = plan(frontend, f'Normal words. <prosody rate="{rate}">Changed words.</prosody> Normal again.')
    assert [p.speed for p in pieces] == [1.0, speed, 1.0]
    assert pieces[1].text == "Changed words."


def test_paragraphs_and_sentences_end_pieces(frontend: TextFrontend) -> None:
    pieces = plan(frontend, "<p><s>First sentence</s><s>Second sentence</s></p><p>Next paragraph</p>")
    assert [p.text for p in pieces] == ["First sentence.", "Second sentence.", "Next paragraph."]
    assert pieces[0].pause_after == pytest.approx(0.3)
    assert pieces[1].pause_after == pytest.approx(0.5)  # the paragraph ends there too


def test_ssml_text_is_normalised(frontend: TextFrontend) -> None:
    pieces = plan(frontend, "It costs $3.50 &amp; more.")
    assert pieces[0].text == "It costs three dollars and fifty cents and more."


def test_detection_needs_speak_at_the_start(frontend: TextFrontend) -> None:
    assert frontend.plan('  <speak>Hi <break time="1s"/> there</speak>')[0].pause_after == pytest.approx(1.0)
    explicit = frontend.plan('<speak version="1.1">Hello</speak>', ssml=True)
    assert explicit[0].text == "Hello"


@pytest.mark.parametrize(
    ("ssml", "mentions"),
    [
        ("<speak>Hello <break time='1s'></speak>", "mismatched tag"),
        ("<speak>Hello", "no element found"),
        ("<speak>Hello &nbsp; world</speak>", "undefined entity"),
        ("<speak>Hello</speak> trailing", "junk after document element"),
        ("<voice>Hello</voice>", "root element must be <speak>"),
        ("<speak><audio src='x.wav'/>Hello</speak>", "unsupported element <audio>"),
        ("<speak><emphasis>Hello</emphasis></speak>", "unsupported element <emphasis>"),
        ("<speak>Hi <break duration='1s'/></speak>", "unsupported attribute 'duration' on <break>"),
        ("<speak>Hi <break time='soon'/></speak>", "break time 'soon'"),
        ("<speak>Hi <break time='11s'/></speak>", "longer than 10s"),
        ("<speak>Hi <break strength='huge'/></speak>", "break strength 'huge'"),
        ("<speak>Hi <break time='1s'>x</break></speak>", "<break> must be empty"),
        ("<speak><say-as interpret-as='currency'>5</say-as></speak>", "interpret-as 'currency'"),
        ("<speak><say-as>5</say-as></speak>", "needs an interpret-as"),
        ("<speak><say-as interpret-as='cardinal'>five</say-as></speak>", "cannot be read as cardinal"),
        ("<speak><say-as interpret-as='date'>2026-13-40</say-as></speak>", "cannot be read as date"),
        ("<speak><say-as interpret-as='cardinal' format='dmy'>5</say-as></speak>", "format 'dmy'"),
        ("<speak><say-as interpret-as='ordinal'><s>3</s></say-as></speak>", "<say-as> cannot contain <s>"),
        ("<speak><phoneme alphabet='x-sampa' ph='k'>k</phoneme></speak>", "alphabet 'x-sampa'"),
        ("<speak><phoneme alphabet='ipa'>word</phoneme></speak>", "needs a ph attribute"),
        ("<speak><phoneme alphabet='ipa' ph='k\u0361x'>word</phoneme></speak>", "U+0361"),
        ("<speak><prosody rate='warp'>Hi</prosody></speak>", "prosody rate 'warp'"),
        ("<speak><prosody rate='500%'>Hi</prosody></speak>", "outside"),
        ("<speak><prosody pitch='high'>Hi</prosody></speak>", "unsupported attribute 'pitch'"),
        ("<speak><speak>Hi</speak></speak>", "cannot be nested"),
        ("<speak><s><p>Hi</p></s></speak>", "<p> cannot be inside"),
        ("<speak xml:lang='fr-FR'>Bonjour</speak>", "English only"),
        ("<speak><sub>WHO</sub></speak>", "alias"),
        ('<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY a "aaaa">]><speak>&a;</speak>', "DOCTYPE"),
    ],
)
def test_malformed_or_unsupported_ssml_is_refused(frontend: TextFrontend, ssml: str, mentions: str) -> None:
    with pytest.raises(VoxError) as caught:
        frontend.plan(ssml, ssml=True)
    assert caught.value.code == "invalid_ssml"
    assert caught.value.status == 400
    assert mentions in caught.value.message
    assert "line 1, column" in caught.value.message


def test_error_position_points_at_the_offending_tag(frontend: TextFrontend) -> None:
    with pytest.raises(VoxError) as caught:
        frontend.plan("<speak>\n  Fine text.\n  <mark name='x'/>\n</speak>")
    assert caught.value.details == {"line": 3, "column": 3}


def test_ssml_with_only_a_break_has_nothing_to_say(frontend: TextFrontend) -> None:
    with pytest.raises(VoxError) as caught:
        frontend.plan('<speak><break time="1s"/></speak>')
    assert caught.value.code == "no_speakable_text"
