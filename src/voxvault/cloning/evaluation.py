"""Cloning fidelity: for each real speaker clip, enrol from one part and judge the clone on the rest.

For every clip the first ``enrol_share`` of the audio is the enrollment, the rest the held-out reference.
Each method (nearest preset, instant clone, fine-tuned clone) speaks held-out sentences; we report SECS
(cosine to the held-out real audio) by every *judge*: GE2E, the encoder the clones are made with, and CAM++,
one they never saw; per judge, whether its verification threshold accepts the clone as the speaker and
whether the clone is closer to its own speaker than to every other speaker of the set. Also ASR WER
against the sentences, the F0 distance to the real clip (semitones between medians, plus the difference of
the p10-p90 ranges) and the time taken to make the style. Works on the engines directly: nothing is stored,
no consent flow is involved.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from voxvault.audio.io import decode, encode
from voxvault.cloning.adapt.decoder import (
    VALIDATION_SENTENCES,
    DecoderTuner,
    adapt_decoder,
    choose_runtime,
)
from voxvault.cloning.adapt.gradient import StyleGradient
from voxvault.cloning.adapt.search import StyleObjective, optimise
from voxvault.cloning.adapt.state import DEFAULT_METHOD, AdaptOptions
from voxvault.cloning.conditioning import REFERENCE_TEXT
from voxvault.cloning.instant import StyleBasis, StyleMap, f0_track, instant_style
from voxvault.cloning.instant_decoder import InstantDecoder, pitch_factor
from voxvault.cloning.pitch import median_f0
from voxvault.cloning.verification import THRESHOLDS
from voxvault.engines.asr import word_error_rate
from voxvault.engines.base import (
    AdaptedSpeaker,
    AdaptedWeights,
    FloatArray,
    SpeakerEncoder,
    SpeechRecognizer,
    TTSEngine,
)
from voxvault.engines.speaker import join_sentences, unit
from voxvault.errors import VoxError
from voxvault.text import TextFrontend

HELD_OUT_SENTENCES = (
    "I would like to book a table for two this evening.",
    "The weather should clear up by the middle of the afternoon.",
)
FINETUNE_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get this message.",
)
METHODS = ("preset", "instant", "finetuned")


@dataclass(frozen=True)
class CloneEvalOptions:
    finetune: bool = True
    finetune_seconds: float = 120.0
    finetune_iterations: int = 12
    enrol_share: float = 0.6
    #: fine-tuning methods to run; the first is reported as ``finetuned``, others as ``finetuned_<method>``
    finetune_methods: tuple[str, ...] = (DEFAULT_METHOD,)
    #: the instant clone's decoder step (``cloning/instant_decoder.py``), as enrollment does by default
    instant_decoder: bool = True
    #: write what each method spoke for the held-out sentences to ``audio_dir/<speaker>/<method>.wav``
    audio_dir: Path | None = None
    #: also judge the instant clone's parts (style alone, step alone, spoken embedding, unpitched)
    variants: bool = True


@dataclass(frozen=True)
class Target:
    """The speaker a clone is judged against: its held-out audio's embedding by each judge (judge name ->
    unit embedding), and the same for every speaker of the set (judge name -> speaker -> embedding)."""

    speaker: str
    references: Mapping[str, FloatArray]
    speaker_set: Mapping[str, Mapping[str, FloatArray]]


def f0_stats(audio: FloatArray, rate: int) -> tuple[float, float] | None:
    """(median Hz, p10-p90 range in semitones) of the voiced frames; None when too little is voiced."""
    f0 = f0_track(audio, rate)
    if f0.size < 5:
        return None
    p10, p50, p90 = np.percentile(f0, [10, 50, 90])
    return float(p50), float(12 * np.log2(p90 / p10))


def f0_distance(a: tuple[float, float] | None, b: tuple[float, float] | None) -> float | None:
    """Semitones between medians plus the absolute difference of ranges (semitones)."""
    if a is None or b is None:
        return None
    return round(abs(12 * np.log2(a[0] / b[0])) + abs(a[1] - b[1]), 3)


def verdict(judge: str, embedding: FloatArray, target: Target, threshold: float | None) -> dict[str, Any]:
    """One judge on one clone: SECS to the speaker's held-out audio; accepted when it reaches the judge's
    EER ``threshold``; the highest cosine to any other speaker of the set, and whether the own is above it."""
    secs = float(np.dot(embedding, target.references[judge]))
    out: dict[str, Any] = {"secs": round(secs, 4)}
    if threshold is not None:
        out["accepted"] = secs >= threshold
    others = [
        float(np.dot(embedding, e))
        for n, e in target.speaker_set.get(judge, {}).items()
        if n != target.speaker
    ]
    if others:
        out["nearest_other"] = round(max(others), 4)
        out["closest"] = secs > max(others)
    return out


class CloneEvaluator:
    def __init__(
        self,
        tts: TTSEngine,
        encoder: SpeakerEncoder,
        asr: SpeechRecognizer,
        style_map: StyleMap,
        options: CloneEvalOptions,
        judges: Sequence[SpeakerEncoder] = (),
    ) -> None:
        """``encoder`` makes the clones (and is a judge); ``judges`` adds independent ones (loaded once by
        the caller, e.g. CAM++), each accepting at its ``verification.THRESHOLDS`` entry."""
        self.tts, self.encoder, self.asr, self.style_map, self.options = tts, encoder, asr, style_map, options
        self.judges: dict[str, SpeakerEncoder] = {j.name: j for j in judges if j.name != encoder.name}
        self.judges[encoder.name] = encoder
        self.thresholds = {name: THRESHOLDS.get(name) for name in self.judges}
        styles = getattr(tts, "preset_styles", None)
        if not callable(styles):
            raise VoxError("no_presets", "the TTS engine has no preset styles to clone from", 500)
        self.presets: dict[str, FloatArray] = styles()
        self.basis = StyleBasis.from_presets(self.presets)
        frontend = self._frontend = TextFrontend(max_phonemes=tts.max_phonemes)
        self._phonemes = {
            s: frontend.phonemes(s) for s in (*HELD_OUT_SENTENCES, *VALIDATION_SENTENCES, REFERENCE_TEXT)
        }
        self._preset_embeddings: dict[str, FloatArray] | None = None
        self._torch_tts: Any = None
        # The instant clone as enrollment makes it: the style, plus the decoder step where it applies
        self.instant_decoder = InstantDecoder.for_engine(tts, encoder) if options.instant_decoder else None

    def preset_embeddings(self) -> dict[str, FloatArray]:
        if self._preset_embeddings is None:
            self._preset_embeddings = {
                name: unit(
                    self.encoder.embed(
                        self.tts.synthesize(self._phonemes[REFERENCE_TEXT], pack), self.tts.sample_rate
                    )
                )
                for name, pack in self.presets.items()
            }
        return self._preset_embeddings

    def finetune(
        self,
        method: str,
        z: FloatArray,
        enrol_emb: FloatArray,
        target: Target,
        real_f0: tuple[float, float] | None,
        start: AdaptedWeights | None = None,
        save_as: str | None = None,
    ) -> dict[str, Any]:
        if method == "decoder":
            return self._adapt_decoder(z, enrol_emb, target, real_f0, start, save_as)
        t0 = time.perf_counter()
        opts = AdaptOptions(
            max_iterations=self.options.finetune_iterations,
            max_seconds=self.options.finetune_seconds,
            population=3,
            sentences=FINETUNE_SENTENCES,
            method=method,
        )
        objective = StyleObjective(self.tts, self.encoder, self.asr, self.basis, enrol_emb, opts)
        gradient = None
        if method == "gradient":
            encoder: Any = self.encoder  # GE2EEncoder: StyleGradient checks embed_differentiable
            gradient = StyleGradient(
                self.torch_tts(), encoder, self.basis, objective.target, objective.phonemes
            )
        ck = optimise(objective, z, opts, gradient=gradient)
        out: dict[str, Any] = {"method": method, "time_s": round(time.perf_counter() - t0, 3)}
        out["iterations"] = ck.iteration
        out.update(self.judge(self.basis.pack(np.asarray(ck.best_z)), target, real_f0, save_as=save_as))
        return out

    def _adapt_decoder(
        self,
        z: FloatArray,
        enrol_emb: FloatArray,
        target: Target,
        real_f0: tuple[float, float] | None,
        start: AdaptedWeights | None,
        save_as: str | None = None,
    ) -> dict[str, Any]:
        """The instant clone (style and decoder step), then the decoder's style projections adapted from
        there (as the adapt job does with a voice's current weights)."""
        t0 = time.perf_counter()
        tts = self.torch_tts()
        encoder: Any = self.encoder
        pack = self.basis.pack(z)
        phonemes = [self._frontend.phonemes(s) for s in FINETUNE_SENTENCES]
        tuner = DecoderTuner(
            tts, encoder, self.asr, pack, enrol_emb, FINETUNE_SENTENCES, phonemes, start=start
        )
        adapted, history = adapt_decoder(
            tuner, steps=self.options.finetune_iterations, max_seconds=self.options.finetune_seconds
        )
        out: dict[str, Any] = {"method": "decoder", "time_s": round(time.perf_counter() - t0, 3)}
        out["iterations"] = len(history)
        out["train_similarity"] = [round(h.similarity, 4) for h in history]
        out["train_recall"] = [round(h.recall, 3) for h in history]
        # Judged as the service speaks it: by the engine under test when it takes the weights itself
        # (onnxruntime with the fused graph: the style biases) unless the job's runtime check would serve
        # them as trained (docs/cloning.md), else by PyTorch; every runtime's numbers when they differ.
        if not isinstance(self.tts, AdaptedSpeaker) or not self.tts.speaks(adapted) or self.tts is tts:
            out["spoken_by"] = tts.name
            out.update(self.judge(pack, target, real_f0, speak=self._speaker(tts, adapted), save_as=save_as))
            return out
        choice = choose_runtime(
            self.tts,
            tts,
            self.encoder,
            [self._phonemes[s] for s in VALIDATION_SENTENCES],
            pack,
            adapted,
            enrol_emb,
        )
        out["runtime_choice"] = choice.to_dict()
        served = self.judge(
            pack, target, real_f0, self._speaker(self.tts, adapted), None if choice.as_trained else save_as
        )
        trained = self.judge(
            pack, target, real_f0, self._speaker(tts, adapted), save_as if choice.as_trained else None
        )
        out["spoken_by"] = tts.name if choice.as_trained else self.tts.name
        out.update(trained if choice.as_trained else served)
        out["as_trained"], out["onnxruntime"] = trained, served
        return out

    @staticmethod
    def _speaker(tts: Any, adapted: AdaptedWeights) -> Callable[[str, FloatArray], FloatArray]:
        return lambda phonemes, pack: tts.synthesize_adapted(phonemes, pack, 1.0, adapted)

    def torch_tts(self) -> Any:
        """PyTorch Kokoro for the gradient methods (the engine under test when it already is one)."""
        from voxvault.engines.kokoro_torch import KokoroTorchEngine

        if isinstance(self.tts, KokoroTorchEngine):
            return self.tts
        if self._torch_tts is None:
            self._torch_tts = KokoroTorchEngine(self.tts.cache_dir)  # type: ignore[attr-defined]
        return self._torch_tts

    def judge(
        self,
        pack: FloatArray,
        target: Target,
        real_f0: tuple[float, float] | None,
        speak: Callable[[str, FloatArray], FloatArray] | None = None,
        save_as: str | None = None,
    ) -> dict[str, Any]:
        """The clone speaks the held-out sentences; every judge scores it against the speaker (``secs`` is
        the clone-making encoder's SECS, ``judges`` each judge's verdict); ``save_as`` names its WAV."""
        synthesize = speak or self.tts.synthesize
        rate = self.tts.sample_rate
        clips = [synthesize(self._phonemes[s], pack) for s in HELD_OUT_SENTENCES]
        joined = join_sentences(clips, rate)
        if save_as is not None and self.options.audio_dir is not None:
            folder = self.options.audio_dir / target.speaker
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{save_as}.wav").write_bytes(encode(joined, rate, "wav"))
        verdicts = {
            name: self._verdict(name, unit(j.embed(joined, rate)), target) for name, j in self.judges.items()
        }
        wers = [
            word_error_rate(text, self.asr.transcribe(clip, rate))
            for clip, text in zip(clips, HELD_OUT_SENTENCES, strict=True)
        ]
        return {
            "secs": verdicts[self.encoder.name]["secs"],
            "wer": round(float(np.mean(wers)), 4),
            "f0_distance": f0_distance(f0_stats(joined, rate), real_f0),
            "judges": verdicts,
        }

    def _verdict(self, judge: str, embedding: FloatArray, target: Target) -> dict[str, Any]:
        return verdict(judge, embedding, target, self.thresholds.get(judge))

    def held_out_references(self, audio: FloatArray, rate: int) -> dict[str, FloatArray]:
        """Each judge's unit embedding of the clip's held-out part (after ``enrol_share``)."""
        held = audio[int(len(audio) * self.options.enrol_share) :]
        return {name: unit(j.embed(held, rate)) for name, j in self.judges.items()}

    def evaluate_clip(
        self,
        name: str,
        audio: FloatArray,
        rate: int,
        speaker_set: Mapping[str, Mapping[str, FloatArray]] | None = None,
    ) -> dict[str, Any]:
        """One speaker: enrol on the first ``enrol_share``, judge every method on the rest. ``speaker_set``
        (judge -> speaker -> held-out embedding, ``held_out_references`` of every clip) adds whether each
        clone is closer to this speaker than to all the others."""
        cut = int(len(audio) * self.options.enrol_share)
        enrol = audio[:cut]
        enrol_emb = unit(self.encoder.embed(enrol, rate))
        references = (
            {j: speaker_set[j][name] for j in self.judges}
            if speaker_set is not None and all(name in speaker_set.get(j, {}) for j in self.judges)
            else self.held_out_references(audio, rate)
        )
        target = Target(name, references, speaker_set or {})
        real_f0 = f0_stats(audio, rate)
        # the real speaker judged as the clones are: enrolment against held-out, by every judge
        own = {
            j: self._verdict(j, enrol_emb if j == self.encoder.name else unit(enc.embed(enrol, rate)), target)
            for j, enc in self.judges.items()
        }
        row: dict[str, Any] = {
            "speaker": name,
            "seconds": round(len(audio) / rate, 2),
            "enrol_vs_heldout_secs": own[self.encoder.name]["secs"],
            "own": own,
        }

        self.preset_embeddings()  # one-off (shared by all clips): not part of the per-speaker time
        t0 = time.perf_counter()
        sims = {n: float(np.dot(enrol_emb, e)) for n, e in self.preset_embeddings().items()}
        nearest = max(sims, key=lambda n: sims[n])
        row["preset"] = {"voice": nearest, "time_s": round(time.perf_counter() - t0, 3)}
        row["preset"].update(self.judge(self.presets[nearest], target, real_f0, save_as="preset"))

        t0 = time.perf_counter()
        pack, z = instant_style(self.basis, self.style_map, enrol_emb, enrol, rate)
        instant: AdaptedWeights | None = None
        step: dict[str, NDArray[np.float32]] | None = None
        pitch: dict[str, NDArray[np.float32]] = {}
        speaker_f0 = median_f0(enrol, rate)
        if self.instant_decoder is not None:  # the deltas enrollment gives the voice
            instant = AdaptedWeights("instant", self.instant_decoder.deltas(pack, enrol_emb, speaker_f0))
        row["instant"] = {"time_s": round(time.perf_counter() - t0, 3)}
        if self.instant_decoder is not None and self.options.variants:  # its parts, for the variants below
            pitch = self.instant_decoder.pitch(pack, speaker_f0)
            step = self.instant_decoder.step(pack, enrol_emb, pitch=pitch)
        speak = self._speaker(self.tts, instant) if instant is not None else None
        row["instant"].update(self.judge(pack, target, real_f0, speak=speak, save_as="instant"))
        if instant is not None and self.options.variants:
            row["instant"]["style_only"] = self.judge(pack, target, real_f0)
        if pitch and self.instant_decoder is not None:
            # the instant clone before pitch matching: at the pitch its style gives, stepped from there
            decoder = self.instant_decoder
            row["instant"]["pitch_factor"] = round(pitch_factor(pitch) or 1.0, 4)
            unpitched = decoder.with_prior(decoder.step(pack, enrol_emb), enrol_emb)
            speak = self._speaker(self.tts, AdaptedWeights("instant", unpitched))
            row["instant"]["unpitched"] = self.judge(pack, target, real_f0, speak=speak)
        if step is not None and self.instant_decoder is not None and self.instant_decoder.prior is not None:
            speak = self._speaker(self.tts, AdaptedWeights("instant", {**step, **pitch}))
            row["instant"]["step_only"] = self.judge(pack, target, real_f0, speak=speak)
        if (
            step is not None
            and self.instant_decoder is not None
            and self.instant_decoder.embedding_map is not None
        ):
            # the same clone with the Jacobian's sentences really spoken instead of their embedding predicted
            decoder = self.instant_decoder
            spoken = decoder.with_prior(decoder.step(pack, enrol_emb, spoken=True, pitch=pitch), enrol_emb)
            speak = self._speaker(self.tts, AdaptedWeights("instant", {**spoken, **pitch}))
            row["instant"]["spoken_embedding"] = self.judge(pack, target, real_f0, speak=speak)

        if self.options.finetune:
            for i, method in enumerate(self.options.finetune_methods):
                key = "finetuned" if i == 0 else f"finetuned_{method}"
                save_as = key if key in METHODS else None
                row[key] = self.finetune(method, z, enrol_emb, target, real_f0, instant, save_as)
        return row


#: resamples of the speakers for the summary's bootstrap intervals (seeded: a report is reproducible)
BOOTSTRAP_RESAMPLES = 10_000


def mean_ci95(values: list[float]) -> list[float] | None:
    """95 % percentile-bootstrap interval of the mean over speakers; None for fewer than two, or when all are
    equal (nothing to resample). A target or a ceiling inside it is not told apart from the mean by this set
    of speakers (docs/cloning.md)."""
    if len(values) < 2 or np.ptp(values) == 0.0:
        return None
    result = stats.bootstrap(
        (np.asarray(values, dtype=np.float64),),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    return [round(float(result.confidence_interval.low), 4), round(float(result.confidence_interval.high), 4)]


def interval_text(ci: list[float] | None) -> str:
    """``[low, high]`` as ``low..high`` for a table; ``-`` where there is none."""
    return "-" if ci is None else f"{ci[0]:.3f}..{ci[1]:.3f}"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    extra = sorted({k for r in rows for k in r if k.startswith("finetuned_")})
    for method in (*METHODS, *extra):
        present = [r for r in rows if method in r]
        got = [r[method] for r in present]
        if not got:
            continue
        f0 = [g["f0_distance"] for g in got if g.get("f0_distance") is not None]
        # SECS as a share of the speaker's own enrolment-vs-held-out similarity: the ceiling the recording
        # sets for a clone made from the enrolment (docs/cloning.md)
        of_own = [r[method]["secs"] / r["enrol_vs_heldout_secs"] for r in present]
        minus_own = [r[method]["secs"] - r["enrol_vs_heldout_secs"] for r in present]
        clone_secs = [g["secs"] for g in got]
        summary[method] = {
            "secs_mean": round(float(np.mean(clone_secs)), 4),
            "secs_ci95": mean_ci95(clone_secs),
            "secs_of_own_mean": round(float(np.mean(of_own)), 4),
            # paired with each speaker's own enrolment-vs-held-out SECS: how far below the ceiling, and
            # whether this set of speakers can tell that from zero
            "secs_minus_own_mean": round(float(np.mean(minus_own)), 4),
            "secs_minus_own_ci95": mean_ci95(minus_own),
            "wer_mean": round(float(np.mean([g["wer"] for g in got])), 4),
            "f0_distance_mean": round(float(np.mean(f0)), 3) if f0 else None,
            "time_s_mean": round(float(np.mean([g["time_s"] for g in got])), 3),
            "speakers": len(got),
        }
        # decoder clones: the same weights through PyTorch (as trained) and through onnxruntime whatever
        # the runtime check chose; an instant clone with its decoder step: the style alone, the step
        # without the decoder prior, the step from the spoken (not predicted) clone embedding, and the clone
        # without pitch matching
        for part in ("as_trained", "onnxruntime", "style_only", "step_only", "spoken_embedding", "unpitched"):
            secs = [g[part]["secs"] for g in got if part in g]
            if secs:
                summary[method][f"{part}_secs_mean"] = round(float(np.mean(secs)), 4)
        choices = [g["runtime_choice"]["as_trained"] for g in got if "runtime_choice" in g]
        if choices:
            summary[method]["served_as_trained"] = int(sum(choices))  # voices the runtime check moved
        judged = summarise_judges(present, method)
        if judged:
            summary[method]["judges"] = judged
    if rows:
        summary["real_enrol_vs_heldout_secs_mean"] = round(
            float(np.mean([r["enrol_vs_heldout_secs"] for r in rows])), 4
        )
        own = summarise_judges([r for r in rows if "own" in r], "own")
        if own:
            summary["own"] = own
    return summary


def _rate(verdicts: list[dict[str, Any]], key: str) -> float | None:
    """Share of the verdicts with ``key`` true; None when no verdict has it (no threshold, one speaker)."""
    flags = [bool(v[key]) for v in verdicts if key in v]
    return round(float(np.mean(flags)), 4) if flags else None


def _verdicts(row: dict[str, Any], method: str) -> dict[str, dict[str, Any]]:
    """Judge name -> verdict for one speaker: its clone's by ``method``, or the real speaker's (``own``)."""
    if method == "own":
        own: dict[str, dict[str, Any]] = row.get("own", {})
        return own
    judged: dict[str, dict[str, Any]] = row.get(method, {}).get("judges", {})
    return judged


def summarise_judges(rows: list[dict[str, Any]], method: str) -> dict[str, dict[str, Any]]:
    """Per judge, over the speakers: mean SECS (95 % interval), mean gap to the speaker's own SECS by the
    same judge (paired, with its interval), the verification accept rate and the share of clones closer to
    their own speaker than to every other speaker. ``method`` ``own`` summarises the real speakers."""
    out: dict[str, dict[str, Any]] = {}
    for judge in sorted({j for r in rows for j in _verdicts(r, method)}):
        judged = [r for r in rows if judge in _verdicts(r, method)]
        verdicts = [_verdicts(r, method)[judge] for r in judged]
        secs = [v["secs"] for v in verdicts]
        entry: dict[str, Any] = {
            "secs_mean": round(float(np.mean(secs)), 4),
            "secs_ci95": mean_ci95(secs),
            "accept_rate": _rate(verdicts, "accepted"),
            "closest_rate": _rate(verdicts, "closest"),
            "speakers": len(verdicts),
        }
        if method != "own" and all(judge in _verdicts(r, "own") for r in judged):
            minus = [v["secs"] - r["own"][judge]["secs"] for v, r in zip(verdicts, judged, strict=True)]
            entry["secs_minus_own_mean"] = round(float(np.mean(minus)), 4)
            entry["secs_minus_own_ci95"] = mean_ci95(minus)
        out[judge] = entry
    return out


def speaker_clips(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise VoxError("not_a_directory", f"{directory} is not a folder of speaker clips", 422)
    clips = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg"))
    if not clips:
        raise VoxError("no_clips", f"no audio clips in {directory}", 422)
    return clips


def evaluate_directory(
    evaluator: CloneEvaluator,
    directory: Path,
    on_clip: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every clip in ``directory``: per-speaker rows and a ``summary`` per method. Every clip's held-out
    part is embedded by every judge first, so each clone is also compared with all the other speakers."""
    rows = []
    t0 = time.perf_counter()
    clips = {}
    speaker_set: dict[str, dict[str, FloatArray]] = {name: {} for name in evaluator.judges}
    for path in speaker_clips(directory):
        decoded = decode(path, max_bytes=50_000_000, max_seconds=120.0)
        clips[path.stem] = decoded
        for judge, embedding in evaluator.held_out_references(decoded.samples, decoded.sample_rate).items():
            speaker_set[judge][path.stem] = embedding
    for name, decoded in clips.items():
        row = evaluator.evaluate_clip(name, decoded.samples, decoded.sample_rate, speaker_set)
        rows.append(row)
        if on_clip is not None:
            on_clip(name, row)
    return {
        "speakers": rows,
        "summary": summarise(rows),
        "judges": {
            name: {
                "threshold": evaluator.thresholds[name],
                "calibration": "bench/results/sv_calibration.json",
            }
            for name in evaluator.judges
        },
        "options": {
            "finetune": evaluator.options.finetune,
            "finetune_seconds": evaluator.options.finetune_seconds,
            "finetune_iterations": evaluator.options.finetune_iterations,
            "enrol_share": evaluator.options.enrol_share,
            "held_out_sentences": list(HELD_OUT_SENTENCES),
            "clones_made_with": evaluator.encoder.name,
        },
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
