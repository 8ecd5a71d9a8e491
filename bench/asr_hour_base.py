"""Peak RSS of Whisper base on an hour-long file (issue 23), beside bench/asr.py's tiny.en hour row.

    python bench/asr_hour_base.py

The same 60-minute FLAC as bench/asr.py (4 minutes of speech at its two ends, room tone between),
transcribed by voxvault in a child process whose peak RSS is measured.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import asr  # noqa: E402  (bench/ is not a package)


def main() -> None:
    items = asr.clips()
    with tempfile.TemporaryDirectory() as tmp:
        hour = asr.hour_file(items, 60.0, speech_minutes=4.0)
        path = Path(tmp) / "hour.flac"
        asr.write_flac(path, hour)
        del hour  # the child's memory is measured, not this process's
        load_before = os.getloadavg()[0]
        [row] = asr.run_child("voxvault", "base", [path], 2)
        row.pop("text", None)
    out = {
        "what": "peak RSS of voxvault transcribing a 60-minute FLAC (4 min of speech), Whisper base, VAD on",
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "runs": [row],
    }
    (HERE / "results" / "asr_hour_base_session14.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
