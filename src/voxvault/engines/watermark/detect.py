"""Detection: find the frame grid (offset and speed), fold the repetitions, decode, check the CRC.

The audio is analysed at 8 kHz with a 4 ms-hop spectrogram, computed once. Each speed factor of the grid
is tried by scaling the band edges and resampling the band-energy envelopes in time, which is far cheaper
than resampling the audio for every speed. For each speed and each of four sub-hop offsets, every quad
is read at every hop and the readings are summed modulo the frame ("folding"); the sync pattern then
scores all 96 frame phases at once.

Deciding. The best alignments are Viterbi-decoded without looking at the CRC and ranked by how well the
whole frame (sync + re-encoded data) agrees with the readings. Only the best-ranked are CRC-checked, with
a list-Viterbi decoder offering its few most likely messages; every message checked is one trial of the
CRC-24, and an input never gets more than ``MAX_CRC_CHECKS`` of them. Unmarked audio passes one trial
with probability 2^-24, so it is reported as marked with probability at most 16 x 2^-24 = 9.5e-7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

import voxvault.engines.watermark.coding as coding
from voxvault.engines.watermark.layout import (
    EPS,
    F64,
    FRAME_HOPS,
    HOP_S,
    N_BANDS,
    N_QUADS,
    N_SYNC,
    QUAD_COLS,
    QUAD_HOPS,
    QUAD_ROWS,
    SLOT_HOPS,
    Layout,
    band_edges,
    band_energy,
    sqrt_hann,
)

FloatArray = NDArray[np.float32]

ANALYSIS_RATE = 8000
MAX_CRC_CHECKS = 16
FALSE_ALARM_BOUND = MAX_CRC_CHECKS * 2.0**-coding.CRC_BITS
LIST_SIZES = (6, 2)  # messages CRC-checked from the best and the second-best hypothesis of a stage
# Speed factors tried: nominal first, then 0.937-1.063 in 0.3% steps (a 10 s clip drifts < 1 hop).
SPEED_GRID = np.round(np.concatenate([[1.0], np.arange(0.937, 1.0635, 0.003)]), 4)
HOP = int(HOP_S * ANALYSIS_RATE)  # 128 samples
SUBS = 4  # sub-hop offsets searched (4 ms steps)
SUB = HOP // SUBS
N_FFT = 2 * HOP
CLIP = 6.0  # soft limit on single quad readings: transients and noise bursts must not dominate a sum
FLOOR_PERCENTILE = 1.0  # noise floor per band: this percentile of 64 ms energies
WINDOW_FRAMES = int(12.0 * ANALYSIS_RATE) // SUB  # longer inputs are searched in 12 s windows, 6 s apart


@dataclass(frozen=True)
class Detection:
    """What a detector run found. ``payload`` is set only when ``present`` (CRC-valid decode).

    ``confidence``: 1 - 2 x (coded-bit disagreements / coded bits) of the accepted decode, i.e. 1.0 for a
    clean read and falling towards 0 as the copy gets worse; 0.0 when absent. ``false_alarm_bound`` is
    the designed probability that unmarked audio is reported present.
    """

    present: bool
    confidence: float
    payload: int | None
    bit_errors: int | None
    coded_bits: int = coding.CODED_BITS
    sync_score: float = 0.0
    agreement: float = 0.0
    speed: float | None = None
    offset_s: float | None = None
    crc_checks: int = 0
    false_alarm_bound: float = FALSE_ALARM_BOUND

    def to_dict(self) -> dict[str, object]:
        return {
            "present": self.present,
            "confidence": round(self.confidence, 4),
            "payload": self.payload,
            "bit_errors": self.bit_errors,
            "coded_bits": self.coded_bits,
            "sync_score": round(self.sync_score, 3),
            "agreement": round(self.agreement, 4),
            "speed": self.speed,
            "offset_s": None if self.offset_s is None else round(self.offset_s, 4),
            "crc_checks": self.crc_checks,
            "false_alarm_bound": self.false_alarm_bound,
        }


@dataclass
class _Candidate:
    """One alignment: speed, sub-hop offset, frame phase (hops) within one analysis window."""

    score: float
    speed: float
    sub: int
    phase: int
    start: int  # first 4 ms analysis frame of the window
    folded: F64 = field(repr=False)  # (rows, FRAME_HOPS)
    readings: F64 = field(repr=False)  # weighted quad readings at every hop, (hops, rows)


@dataclass
class _Hypothesis:
    """One decoded reading of one alignment, before the CRC is looked at."""

    cand: _Candidate
    bits: coding.Bits
    soft: F64 = field(repr=False)
    coded: F64 = field(repr=False)
    agreement: float = 0.0


class Detector:
    """One detection run over mono 8 kHz audio. Not reusable across inputs (keeps the best guess)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.window = sqrt_hann(N_FFT)
        self._sync_u = (layout.sync_cols * QUAD_HOPS)[None, :] + np.arange(FRAME_HOPS)[:, None]
        self.guess: int | None = None  # payload bits of the best-agreeing hypothesis, CRC-valid or not

    def run(self, x: FloatArray) -> Detection:
        if len(x) < N_FFT or float(np.max(np.abs(x))) == 0.0:
            return Detection(present=False, confidence=0.0, payload=None, bit_errors=None)
        power = _power_spectrogram(x, self.window)
        n_frames = len(power)
        starts = [0]
        if n_frames > WINDOW_FRAMES * 1.25:
            starts = list(range(0, n_frames - WINDOW_FRAMES + 1, WINDOW_FRAMES // 2))
            if starts[-1] + WINDOW_FRAMES < n_frames:
                starts.append(n_frames - WINDOW_FRAMES)
        span = WINDOW_FRAMES if len(starts) > 1 else n_frames

        checks = 0
        best_score = best_agreement = 0.0
        checked: set[bytes] = set()
        # Stage 1: nominal speed (the common case, cheap). Stage 2: the whole speed grid.
        stages = ((SPEED_GRID[:1], 6, MAX_CRC_CHECKS // 2), (SPEED_GRID[1:], 30, MAX_CRC_CHECKS))
        for speeds, n_decode, budget in stages:
            pool: list[_Candidate] = []
            for start in starts:
                for speed in speeds:
                    pool.extend(self._candidates(power[start : start + span], float(speed), start)[:4])
            pool.sort(key=lambda c: -c.score)
            if pool:
                best_score = max(best_score, pool[0].score)
            picked: list[_Candidate] = []
            for cand in pool:
                if len(picked) >= n_decode:
                    break
                if not any(_near(cand, p) for p in picked):
                    picked.append(cand)
            if picked and checks < budget:  # fast path: the strongest sync is usually right
                first = self._hypothesis(picked[0], self._columns(picked[0]))
                checks += 1
                checked.add(first.bits.tobytes())
                payload = coding.check_message(first.bits, self.layout.scrambler)
                if payload is not None:
                    return self._result(first, payload, checks)
            hyps = [h for cand in picked for h in self._hypotheses(cand)]
            hyps.sort(key=lambda h: -h.agreement)
            if hyps and hyps[0].agreement > best_agreement:
                best_agreement = hyps[0].agreement
                self.guess = coding.bits_to_int((hyps[0].bits ^ self.layout.scrambler)[: coding.PAYLOAD_BITS])
            for rank, hyp in enumerate(hyps[: len(LIST_SIZES)]):
                for bits in coding.list_viterbi_decode(hyp.soft, coding.MESSAGE_BITS, LIST_SIZES[rank]):
                    if checks >= budget:
                        break
                    if bits.tobytes() in checked:
                        continue
                    checks += 1
                    checked.add(bits.tobytes())
                    payload = coding.check_message(bits, self.layout.scrambler)
                    if payload is not None:
                        coded = _bipolar(coding.conv_encode(bits))
                        return self._result(replace(hyp, bits=bits, coded=coded), payload, checks)
        return Detection(
            present=False,
            confidence=0.0,
            payload=None,
            bit_errors=None,
            sync_score=best_score,
            agreement=best_agreement,
            crc_checks=checks,
        )

    # -- alignment search -----------------------------------------------------------------------------
    def _candidates(self, power: NDArray[np.float32], speed: float, start: int) -> list[_Candidate]:
        """The best alignments at one speed in one window, strongest sync first."""
        env = band_energy(power, band_edges(N_FFT, ANALYSIS_RATE, speed))  # (4 ms frames, bands)
        n_hops = int((len(env) - 1) * speed / SUBS) - 1
        if n_hops < QUAD_HOPS + SLOT_HOPS:
            return []
        csum = np.cumsum(env, axis=0, dtype=np.float64)
        slot_env = (csum[SLOT_HOPS * SUBS :] - csum[: -SLOT_HOPS * SUBS]) / SUBS
        floor = np.percentile(slot_env[::SUBS], FLOOR_PERCENTILE, axis=0) + 1e-12 * (
            float(slot_env.max()) + EPS
        )
        out: list[_Candidate] = []
        hops = np.arange(n_hops)
        for sub in range(SUBS):
            if speed == 1.0:
                hop_env = env[sub::SUBS][:n_hops]
            else:  # the received hop grid is the original one divided by the speed
                pos = (hops * SUBS + sub) / speed
                i0 = pos.astype(np.int64)
                frac = (pos - i0)[:, None]
                hop_env = env[i0] * (1 - frac) + env[np.minimum(i0 + 1, len(env) - 1)] * frac
            readings = self._readings(hop_env, floor)
            folded = _fold(readings)
            scores = self._sync_scores(folded)
            for phase in _peaks(scores, 2):
                out.append(_Candidate(float(scores[phase]), speed, sub, phase, start, folded, readings))
        out.sort(key=lambda c: -c.score)
        return out

    @staticmethod
    def _readings(hop_env: F64, floor: F64) -> F64:
        """Soft-limited readings of a quad starting at every hop, weighted by local SNR: (hops, rows)."""
        csum = np.concatenate([np.zeros((1, N_BANDS)), np.cumsum(hop_env, axis=0)])
        slot = csum[SLOT_HOPS:] - csum[:-SLOT_HOPS]  # energy of the slot starting at each hop
        logs = np.log(slot + EPS)
        snr = np.maximum(slot / floor - 1.0, 0.0)
        rel = snr / (1.0 + snr)
        t = slot.shape[0] - SLOT_HOPS
        a, b = logs[:t], logs[SLOT_HOPS:]
        q = (a[:, 0::2] - a[:, 1::2]) - (b[:, 0::2] - b[:, 1::2])
        ra, rb = rel[:t], rel[SLOT_HOPS:]
        weight = (ra[:, 0::2] + ra[:, 1::2] + rb[:, 0::2] + rb[:, 1::2]) / 4.0
        return CLIP * np.tanh(q / CLIP) * weight

    def _sync_scores(self, folded: F64) -> F64:
        """Normalised correlation with the sync pattern for every frame phase (hop)."""
        lay = self.layout
        vals = folded[lay.sync_rows[None, :], self._sync_u % FRAME_HOPS]
        norm = math.sqrt(N_SYNC * float(np.mean(folded**2)) + EPS)
        return np.asarray((vals @ lay.sync_chips) / norm)

    # -- decoding -------------------------------------------------------------------------------------
    @staticmethod
    def _columns(cand: _Candidate) -> F64:
        return cand.folded[:, (cand.phase + np.arange(QUAD_COLS) * QUAD_HOPS) % FRAME_HOPS]

    def _hypothesis(self, cand: _Candidate, folded_cols: F64) -> _Hypothesis:
        """Viterbi-decode one (rows, cols) fold and score the whole frame's agreement with the result."""
        lay = self.layout
        soft = lay.coded_soft(folded_cols)
        bits = coding.viterbi_decode(soft, coding.MESSAGE_BITS)
        coded = _bipolar(coding.conv_encode(bits))
        units = folded_cols[lay.data_rows, lay.data_cols]
        sync = folded_cols[lay.sync_rows, lay.sync_cols]
        agree = float(units @ coded[lay.data_bit] + sync @ lay.sync_chips)
        total = float(np.sum(np.abs(units)) + np.sum(np.abs(sync))) + EPS
        return _Hypothesis(cand, bits, soft, coded, agree / total)

    def _hypotheses(self, cand: _Candidate) -> list[_Hypothesis]:
        """The plain fold, then a re-weighted fold guided by the first decode.

        With the first decode as reference, each band pair (row) is scaled by its measured reliability
        (mean over variance of its agreeing readings: a log-likelihood-ratio scale), and for longer inputs
        each repetition of the frame by how well it agrees, so marked audio inside a longer unmarked
        recording is not drowned out by the rest.
        """
        first = self._hypothesis(cand, self._columns(cand))
        reference = self.layout.frame_pattern((first.coded < 0).astype(np.uint8))
        m = np.arange(-(cand.phase // QUAD_HOPS), (cand.readings.shape[0] - 1 - cand.phase) // QUAD_HOPS + 1)
        vals = cand.readings[cand.phase + m * QUAD_HOPS]  # every quad reading in time order, (n, rows)
        col, rep = m % QUAD_COLS, m // QUAD_COLS
        agreeing = vals * reference[:, col].T
        rep = rep - rep.min()
        n_rep = int(rep.max()) + 1
        weight = np.ones(n_rep)
        if n_rep >= 3:
            corr = np.bincount(rep, agreeing.sum(axis=1), n_rep) / np.sqrt(
                np.bincount(rep, np.sum(vals**2, axis=1), n_rep) * N_QUADS + EPS
            )
            weight = np.maximum(corr - 2.0 / math.sqrt(N_QUADS), 0.0)
            if not weight.any():
                return [first]
        w = weight[rep][:, None]
        mean = np.sum(agreeing * w, axis=0) / (np.sum(w) + EPS)
        var = np.sum((agreeing - mean) ** 2 * w, axis=0) / (np.sum(w) + EPS)
        scale = np.maximum(mean, 0.0) / (var + 1e-3)
        if not scale.any():
            return [first]
        folded = np.zeros((QUAD_COLS, QUAD_ROWS))
        np.add.at(folded, col, vals * w * scale[None, :])
        return [first, self._hypothesis(cand, folded.T)]

    def _result(self, hyp: _Hypothesis, payload: int, checks: int) -> Detection:
        cand = hyp.cand
        errors = int(np.sum((hyp.soft < 0) != (hyp.coded < 0)))
        grid_start = cand.start * SUB + (cand.phase * HOP + cand.sub * SUB) / cand.speed
        return Detection(
            present=True,
            confidence=max(0.0, 1.0 - 2.0 * errors / coding.CODED_BITS),
            payload=payload,
            bit_errors=errors,
            sync_score=cand.score,
            agreement=hyp.agreement,
            speed=float(cand.speed),
            offset_s=grid_start / ANALYSIS_RATE,
            crc_checks=checks,
        )


def _power_spectrogram(x: FloatArray, window: FloatArray, block: int = 8192) -> NDArray[np.float32]:
    """|STFT|^2 at a 4 ms hop, computed in blocks of frames so long inputs stay within modest memory."""
    n_frames = 1 + (len(x) - N_FFT) // SUB
    out = np.empty((n_frames, N_FFT // 2 + 1), dtype=np.float32)
    offsets = np.arange(N_FFT)[None, :]
    for first in range(0, n_frames, block):
        frames = np.arange(first, min(first + block, n_frames))
        spec = sfft.rfft(x[offsets + SUB * frames[:, None]] * window, axis=1)
        out[first : first + len(frames)] = spec.real**2 + spec.imag**2
    return out


def _bipolar(bits: coding.Bits) -> F64:
    """Coded bits as the symbols the embedder used: 0 -> +1, 1 -> -1."""
    return np.asarray(1.0 - 2.0 * bits.astype(np.float64), dtype=np.float64)


def _fold(readings: F64) -> F64:
    """Readings summed modulo the frame: (rows, FRAME_HOPS)."""
    pad = (-readings.shape[0]) % FRAME_HOPS
    q = np.concatenate([readings, np.zeros((pad, QUAD_ROWS))]) if pad else readings
    return np.asarray(q.reshape(-1, FRAME_HOPS, QUAD_ROWS).sum(axis=0).T)


def _peaks(scores: F64, k: int) -> list[int]:
    """Indices of the k largest circular local maxima."""
    peaks = np.nonzero((scores >= np.roll(scores, 1)) & (scores >= np.roll(scores, -1)))[0]
    return [int(i) for i in peaks[np.argsort(-scores[peaks])][:k]]


def _near(a: _Candidate, b: _Candidate) -> bool:
    """Two candidates that are the same alignment for decoding purposes (within a hop and a speed step)."""
    if a.start != b.start or abs(a.speed - b.speed) > 0.0035:
        return False
    period = FRAME_HOPS * SUBS
    d = (a.phase * SUBS + a.sub) - (b.phase * SUBS + b.sub)
    d = (d + period // 2) % period - period // 2
    return abs(d) <= SLOT_HOPS
