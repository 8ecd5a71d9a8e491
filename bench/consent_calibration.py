"""Consent checks calibration: measured false-accept / false-reject rates of every threshold.

Data (nothing downloaded):
- real speech: the six speakers in ../shared/testdata/speakers (one 4-7 s clip each);
- synthetic voices: the engine's presets plus 50/50 blends of preset pairs, each reading a consent script
  with a random code (the "consent recording") and three other sentences (the "samples").

Measured:
- same person (GE2E cosine, consent vs samples): real clips split in halves (same person = the two halves
  of one clip; different = halves of different clips), synthetic voices (script vs sentences);
- one speaker per file (2-means centroid cosine): one person's speech vs two people's speech joined;
- script check, by the check the server runs (``consent_script_check``: Whisper by default, which hears
  the name, organisation, purpose and code; ``pocketsphinx`` for the older grammar pass): genuine
  recordings (accept), the same recordings against another code (replayed old recording: must refuse),
  the script read in the wrong order, the script read with another speaker's name (Whisper only: the
  grammar pass never checked names), other speech (real clips, sentences). A recording is transcribed
  once and scored against each code (the replay trials re-use its transcript, as a replay would);
- quality: the SNR estimate against known added noise.

The per-file GE2E and CAM++ thresholds, and the clone attacks, are measured by ``bench/consent.py`` and
``bench/consent_victims.py``.

Writes JSON and the tables in docs/consent.md (between the calibration markers).

    python bench/consent_calibration.py --out bench/results/consent_calibration.json --doc docs/consent.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from doc_block import replace_block

from voxvault.audio.io import decode, resample
from voxvault.config import Settings
from voxvault.engines.speaker import cosine
from voxvault.errors import VoxError
from voxvault.service import VoxVault
from voxvault.synthesis import VoiceStyle
from voxvault.voices.consent import build_script, make_challenge
from voxvault.voices.identity import IdentityPolicy, embed_measures, speaker_split
from voxvault.voices.quality import AudioMeasures, measure
from voxvault.voices.script_check import ScriptChecker, ScriptPolicy
from voxvault.voices.script_heard import EnglishWhisper, HeardScriptChecker

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT.parent / "shared" / "testdata" / "speakers"
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Every morning I walk to the market and buy fresh bread for breakfast.",
    "She said the weather would be cold and windy for the rest of the week.",
)
SCRIPT_ARGS = {"speaker_name": "Sam Taylor", "organization": "Acme Studios", "purpose": "audiobook narration"}
WRONG_NAME = "Maria Garcia"
SWEEP = [round(x, 2) for x in np.arange(0.60, 0.99, 0.05)]


class OnceTranscribed:
    """Whisper, transcribing each distinct recording once (the replay trials score one transcript)."""

    def __init__(self, transcriber: Any) -> None:
        self.transcriber = transcriber
        self._seen: dict[bytes, str] = {}

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        key = np.asarray(audio, dtype=np.float32).tobytes() + sample_rate.to_bytes(4, "little")
        if key not in self._seen:
            self._seen[key] = self.transcriber.transcribe(audio, sample_rate)
        return self._seen[key]


def rate(errors: int, trials: int) -> str:
    return f"{errors}/{trials} ({100.0 * errors / trials:.1f} %)" if trials else "n/a"


class Bench:
    def __init__(self, vv: VoxVault, seed: int) -> None:
        self.vv = vv
        self.rng = np.random.default_rng(seed)
        self.vad = vv.engines.vad()
        self.encoder = vv.engines.speaker()
        self.script_check = vv.settings.consent_script_check
        self.checker: ScriptChecker | HeardScriptChecker = (
            HeardScriptChecker(OnceTranscribed(EnglishWhisper(vv.engines.transcriber())))
            if self.script_check == "whisper"
            else ScriptChecker()
        )
        self.policy = IdentityPolicy(same_speaker_threshold=vv.settings.speaker_match_threshold)

    def m(self, audio: np.ndarray, rate_hz: int = 16_000, label: str = "x") -> AudioMeasures:
        return measure(label, audio, rate_hz, self.vad)

    def speak(self, text: str, style: VoiceStyle) -> np.ndarray:
        """The pipeline's own output (front end, engine, loudness) at the checks' 16 kHz."""
        rendered = self.vv.pipeline.render(self.vv.pipeline.prepare(text, style, fmt="pcm"))
        return resample(rendered.samples, rendered.sample_rate, 16_000)

    def voices(self, blends: int) -> dict[str, VoiceStyle]:
        styles = self.vv.catalog.preset_styles()
        out = {name: VoiceStyle(voice_id=name, style=s) for name, s in styles.items()}
        pairs = list(itertools.combinations(sorted(styles), 2))
        for a, b in pairs[:blends]:
            out[f"{a}+{b}"] = VoiceStyle(
                voice_id=f"{a}+{b}", style=(0.5 * styles[a] + 0.5 * styles[b]).astype(np.float32)
            )
        return out


def synthetic_material(b: Bench, blends: int) -> dict[str, dict[str, Any]]:
    material: dict[str, dict[str, Any]] = {}
    for name, style in b.voices(blends).items():
        code = make_challenge()
        script = build_script(
            SCRIPT_ARGS["speaker_name"], SCRIPT_ARGS["organization"], SCRIPT_ARGS["purpose"], code
        )
        statement, tail = script.split(" My one-time code is ")
        t0 = time.perf_counter()
        material[name] = {
            "code": " ".join(code),
            "consent": b.speak(script, style),
            "swapped": b.speak(f"My one-time code is {tail} {statement}", style),
            "wrong_name": b.speak(script.replace(SCRIPT_ARGS["speaker_name"], WRONG_NAME), style),
            "samples": [b.speak(s, style) for s in SENTENCES],
        }
        print(f"  synthesised {name} in {time.perf_counter() - t0:.1f}s", flush=True)
    return material


def real_material() -> dict[str, np.ndarray]:
    return {
        p.stem[3:]: decode(p, max_bytes=10**8, max_seconds=60, target_sr=16_000).samples
        for p in sorted(SPEAKERS.glob("en_*.wav"))
    }


def embed(b: Bench, audios: list[np.ndarray]) -> np.ndarray:
    return embed_measures(b.encoder, [b.m(a) for a in audios])


def same_person(b: Bench, real: dict[str, np.ndarray], syn: dict[str, dict[str, Any]]) -> dict[str, Any]:
    halves = {n: (embed(b, [a[: len(a) // 2]]), embed(b, [a[len(a) // 2 :]])) for n, a in real.items()}
    real_same = [cosine(*halves[n]) for n in real]
    real_diff = [
        cosine(halves[x][i], halves[y][j])
        for x, y in itertools.combinations(real, 2)
        for i in (0, 1)
        for j in (0, 1)
    ]
    consent = {n: embed(b, [v["consent"]]) for n, v in syn.items()}
    samples = {n: embed(b, v["samples"]) for n, v in syn.items()}
    syn_same = [cosine(consent[n], samples[n]) for n in syn]
    syn_diff = [cosine(consent[x], samples[y]) for x in syn for y in syn if x != y]
    presets = set(b.vv.catalog.preset_styles())
    preset_diff = [cosine(consent[x], samples[y]) for x in presets for y in presets if x != y]
    cross = [cosine(halves[r][0], samples[n]) for r in real for n in syn]
    return {
        "real_same": real_same,
        "real_diff": real_diff,
        "syn_same": syn_same,
        "syn_diff": syn_diff,
        "preset_diff": preset_diff,
        "real_vs_syn": cross,
    }


def one_speaker(b: Bench, real: dict[str, np.ndarray], syn: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def split(audio: np.ndarray) -> tuple[float | None, int]:
        s = speaker_split(b.encoder, b.m(audio), b.policy)
        return s.centroid_cosine, s.smaller_group

    single = [split(np.concatenate([a, 0.7 * a])) for a in real.values()]
    single += [split(np.concatenate(v["samples"])) for v in syn.values()]
    mixed_real = [split(np.concatenate([real[x], real[y]])) for x, y in itertools.combinations(real, 2)]
    names = list(syn)
    mixed_syn = [
        split(np.concatenate(syn[x]["samples"][:2] + syn[y]["samples"][:2]))
        for x, y in itertools.combinations(names, 2)
    ]
    mixed_cross = [
        split(np.concatenate([real[r], *syn[n]["samples"][:2]])) for r, n in zip(real, names, strict=False)
    ]
    return {"single": single, "mixed_real": mixed_real, "mixed_syn": mixed_syn, "mixed_cross": mixed_cross}


def script_checks(
    b: Bench, real: dict[str, np.ndarray], syn: dict[str, dict[str, Any]], impostor_codes: int
) -> dict[str, Any]:
    def outcome(audio: np.ndarray, code: str) -> tuple[str, dict[str, Any]]:
        try:
            scores = b.checker.check(audio, challenge=code, **SCRIPT_ARGS)
            return "accepted", scores.numbers()
        except VoxError as exc:
            return exc.code, {k: v for k, v in exc.details.items() if k not in ("file",)}

    genuine, replay, order, other, wrong_name = [], [], [], [], []
    for name, v in syn.items():
        genuine.append((name, *outcome(v["consent"], v["code"])))
        for _ in range(impostor_codes):
            replay.append((name, *outcome(v["consent"], " ".join(make_challenge()))))
        order.append((name, *outcome(v["swapped"], v["code"])))
        other.append((name, *outcome(np.concatenate(v["samples"]), v["code"])))
        if "wrong_name" in v:
            wrong_name.append((name, *outcome(v["wrong_name"], v["code"])))
    for name, audio in real.items():
        other.append((name, *outcome(audio, " ".join(make_challenge()))))
    return {
        "checker": b.script_check,
        "genuine": genuine,
        "replayed_code": replay,
        "wrong_order": order,
        "wrong_name": wrong_name,
        "other_speech": other,
    }


def decide(n: dict[str, Any], code_t: float, statement_t: float) -> str:
    """ScriptChecker's decision, recomputed from its numbers (so thresholds can be re-evaluated)."""
    code_ok = bool(n.get("grammar_fit")) and n.get("code_recall", 0.0) >= code_t
    statement_ok = n.get("statement_recall", 0.0) >= statement_t
    if code_ok and statement_ok:
        return "accepted"
    swapped = n.get("swapped_code_recall")
    if not code_ok and swapped is not None and swapped >= code_t:
        return "script_wrong_order"
    if not statement_ok:
        return "script_mismatch"
    return "challenge_not_spoken" if n.get("grammar_fit") else "script_mismatch"


def summarise(raw: dict[str, Any], identity: IdentityPolicy, script: ScriptPolicy) -> dict[str, Any]:
    s, o, sc = raw["same_person"], raw["one_speaker"], raw["script"]
    t = identity.same_speaker_threshold

    def above(values: list[float], th: float) -> int:
        return sum(v >= th for v in values)

    def below(values: list[float], th: float) -> int:
        return sum(v < th for v in values)

    def refused(item: list[Any]) -> bool:
        cos, smaller = item
        return cos is not None and smaller >= identity.min_group_windows and cos < identity.split_threshold

    def outcomes(key: str) -> list[str]:
        if sc.get("checker", "pocketsphinx") != "pocketsphinx":
            return [code for _, code, _ in sc.get(key, [])]  # Whisper's own decision, as the server makes it
        return [
            decide(numbers, script.min_code_recall, script.min_statement_recall)
            for _, _, numbers in sc.get(key, [])
        ]

    genuine, replay, order, other, wrong_name = (
        outcomes(k) for k in ("genuine", "replayed_code", "wrong_order", "other_speech", "wrong_name")
    )
    return {
        "same_person": {
            "threshold": t,
            "real_fr": rate(below(s["real_same"], t), len(s["real_same"])),
            "real_fa": rate(above(s["real_diff"], t), len(s["real_diff"])),
            "syn_fr": rate(below(s["syn_same"], t), len(s["syn_same"])),
            "syn_fa": rate(above(s["syn_diff"], t), len(s["syn_diff"])),
            "preset_fa": rate(above(s["preset_diff"], t), len(s["preset_diff"])),
            "cross_fa": rate(above(s["real_vs_syn"], t), len(s["real_vs_syn"])),
            "sweep": {
                f"{th:.2f}": {
                    "real_fr": below(s["real_same"], th) / len(s["real_same"]),
                    "real_fa": above(s["real_diff"], th) / len(s["real_diff"]),
                    "syn_fr": below(s["syn_same"], th) / len(s["syn_same"]),
                    "syn_fa": above(s["syn_diff"], th) / len(s["syn_diff"]),
                }
                for th in SWEEP
            },
        },
        "one_speaker": {
            "threshold": identity.split_threshold,
            "min_group_windows": identity.min_group_windows,
            "single_fr": rate(sum(map(refused, o["single"])), len(o["single"])),
            "mixed_real_fa": rate(sum(not refused(x) for x in o["mixed_real"]), len(o["mixed_real"])),
            "mixed_syn_fa": rate(sum(not refused(x) for x in o["mixed_syn"]), len(o["mixed_syn"])),
            "mixed_cross_fa": rate(sum(not refused(x) for x in o["mixed_cross"]), len(o["mixed_cross"])),
        },
        "script": {
            "checker": sc.get("checker", "pocketsphinx"),
            "min_code_recall": script.min_code_recall,
            "min_statement_recall": script.min_statement_recall,
            "wrong_name_fa": rate(sum(x == "accepted" for x in wrong_name), len(wrong_name)),
            "genuine_fr": rate(sum(g != "accepted" for g in genuine), len(genuine)),
            "replayed_code_fa": rate(sum(r == "accepted" for r in replay), len(replay)),
            "wrong_order_fa": rate(sum(x == "accepted" for x in order), len(order)),
            "wrong_order_named": rate(sum(x == "script_wrong_order" for x in order), len(order)),
            "other_speech_fa": rate(sum(x == "accepted" for x in other), len(other)),
            "genuine_by_voice": {g[0]: d for g, d in zip(sc["genuine"], genuine, strict=True)},
        },
    }


def snr_accuracy(b: Bench, real: dict[str, np.ndarray]) -> dict[str, Any]:
    rows: dict[str, dict[str, float]] = {}
    for name, clean in real.items():
        rms = float(np.sqrt(np.mean(clean**2)))
        row = {"clean": b.m(clean).snr_db}
        for snr in (20, 10, 0):
            noisy = clean + b.rng.normal(0, rms / 10 ** (snr / 20), clean.size).astype(np.float32)
            row[f"{snr} dB"] = b.m(noisy).snr_db
        rows[name] = {k: round(v, 1) for k, v in row.items()}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="write the raw scores and the summary here (JSON)")
    ap.add_argument("--doc", default=None, help="rewrite the calibration section of this markdown file")
    ap.add_argument("--from-json", default=None, help="re-summarise saved raw scores with today's thresholds")
    ap.add_argument("--blends", type=int, default=4, help="50/50 preset blends added as synthetic voices")
    ap.add_argument("--impostor-codes", type=int, default=3, help="other codes tried per genuine recording")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    settings = Settings()
    identity = IdentityPolicy(same_speaker_threshold=settings.speaker_match_threshold)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
    else:
        if not SPEAKERS.is_dir():
            raise SystemExit(f"real speech clips not found at {SPEAKERS}")
        t0 = time.perf_counter()
        b = Bench(VoxVault(settings), args.seed)
        print("synthesising material…", flush=True)
        syn = synthetic_material(b, args.blends)
        real = real_material()
        print("same person…", flush=True)
        same = same_person(b, real, syn)
        print("one speaker…", flush=True)
        single = one_speaker(b, real, syn)
        print("script…", flush=True)
        script = script_checks(b, real, syn, args.impostor_codes)
        result = {
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "seconds": round(time.perf_counter() - t0, 1),
            "voices": {"real": list(real), "synthetic": list(syn)},
            "same_person": same,
            "one_speaker": single,
            "script": script,
            "snr_estimate_db": snr_accuracy(b, real),
        }
    result["summary"] = summarise(result, identity, ScriptPolicy())
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2, default=lambda x: round(float(x), 4)))
    print(json.dumps(result["summary"], indent=1))
    if args.doc:
        write_doc(Path(args.doc), result)


BEGIN, END = "<!-- calibration:begin -->", "<!-- calibration:end -->"
SCRIPT_CHECKERS = {
    "whisper": "Whisper, English, no prompt: name, organisation, purpose and code each heard",
    "pocketsphinx": "PocketSphinx's grammar pass: statement recall and the code",
}


def _range(values: list[float]) -> str:
    return f"{min(values):.3f} – {max(values):.3f}" if values else "n/a"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _cos(items: list[tuple[float | None, int]]) -> str:
    return _range([c for c, _ in items if c is not None])


def write_doc(path: Path, r: dict[str, Any]) -> None:
    raw_s, raw_o, raw_sc = r["same_person"], r["one_speaker"], r["script"]
    s = {**raw_s, **r["summary"]["same_person"]}
    o = {**raw_o, **r["summary"]["one_speaker"]}
    sc = {**raw_sc, **r["summary"]["script"]}
    n_syn = len(r["voices"]["synthetic"])
    lines = [
        BEGIN,
        "",
        f"Measured by `bench/consent_calibration.py` ({r['seconds']:.0f} s on {r['machine']['platform']}); "
        f"real = the six speakers in `../shared/testdata`, synthetic = {n_syn} voices "
        f"({', '.join(r['voices']['synthetic'])}).",
        "",
        f"**Same person** (threshold {s['threshold']:.2f}):",
        "",
        _row("set", "same-person cosine", "different-person cosine", "false reject", "false accept"),
        _row("---", "---", "---", "---", "---"),
        _row(
            "real (clip halves, 2-3 s)",
            _range(s["real_same"]),
            _range(s["real_diff"]),
            s["real_fr"],
            s["real_fa"],
        ),
        _row(
            "synthetic (script vs 3 sentences)",
            _range(s["syn_same"]),
            _range(s["syn_diff"]),
            s["syn_fr"],
            s["syn_fa"],
        ),
        _row("synthetic, presets only", "", _range(s["preset_diff"]), "", s["preset_fa"]),
        _row("real half vs synthetic samples", "", _range(s["real_vs_syn"]), "", s["cross_fa"]),
        "",
        "Sweep (false reject / false accept):",
        "",
        _row("threshold", "real FR", "real FA", "synthetic FR", "synthetic FA"),
        _row("---", "---", "---", "---", "---"),
    ]
    for th, v in s["sweep"].items():
        pct = [f"{100 * v[k]:.0f} %" for k in ("real_fr", "real_fa", "syn_fr", "syn_fa")]
        lines.append(_row(f"{float(th):.2f}", *pct))
    singles = [x for x in o["single"] if x[0] is not None]
    lines += [
        "",
        f"**One speaker per file** (centroid cosine below {o['threshold']:.2f} with at least "
        f"{o['min_group_windows']} windows in each group = two speakers):",
        "",
        _row("set", "centroid cosine", "wrong decisions"),
        _row("---", "---", "---"),
        _row(
            "one person (real clip twice; 3 synthetic sentences)", _cos(singles), f"{o['single_fr']} refused"
        ),
        _row("two real people joined", _cos(o["mixed_real"]), f"{o['mixed_real_fa']} accepted"),
        _row("two synthetic voices joined", _cos(o["mixed_syn"]), f"{o['mixed_syn_fa']} accepted"),
        _row("real + synthetic joined", _cos(o["mixed_cross"]), f"{o['mixed_cross_fa']} accepted"),
        "",
        f"**Script check** ({SCRIPT_CHECKERS[sc['checker']]}):",
        "",
        _row("trial", "wrong decisions"),
        _row("---", "---"),
        _row("genuine recording, right code", f"{sc['genuine_fr']} refused"),
        _row("same recording, another code (a replayed old recording)", f"{sc['replayed_code_fa']} accepted"),
        _row(
            "script read in the wrong order",
            f"{sc['wrong_order_fa']} accepted; {sc['wrong_order_named']} named `script_wrong_order`",
        ),
        *(
            [_row(f"script read with another name ({WRONG_NAME})", f"{sc['wrong_name_fa']} accepted")]
            if sc.get("wrong_name")
            else []
        ),
        _row("other speech (real clips, other sentences)", f"{sc['other_speech_fa']} accepted"),
        "",
        "Genuine outcome by voice: "
        + ", ".join(f"{k}: {v}" for k, v in sc["genuine_by_voice"].items())
        + ".",
        "",
        "**SNR estimate** (dB; white noise added at a known SNR to the real clips):",
        "",
        _row("clip", "clean", "20 dB added", "10 dB added", "0 dB added"),
        _row("---", "---", "---", "---", "---"),
    ]
    for name, row in r["snr_estimate_db"].items():
        lines.append(_row(name, row["clean"], row["20 dB"], row["10 dB"], row["0 dB"]))
    lines += ["", END]
    replace_block(path, "\n".join(lines), BEGIN, END)


if __name__ == "__main__":
    main()
