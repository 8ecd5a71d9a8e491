// voxvault console: plain JavaScript, no build step, no third-party code. Talks to this origin's API only.
"use strict";

const KEY_STORAGE = "voxvault.apiKey";
const PCM_RATE = 24000;
const AUDIT_ROWS_SHOWN = 500;
const EXTENSIONS = { mp3: "mp3", wav: "wav", pcm: "pcm", opus: "ogg", aac: "aac", flac: "flac" };

const $ = (id) => document.getElementById(id);

/** Build an element: h("li", {class: "x", dataset: {a: 1}}, "text", child). Text is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---------------------------------------------------------------------------------------------------------
// Errors in plain words
// ---------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

const FRIENDLY = {
  missing_api_key: "Enter an API key to sign in.",
  invalid_api_key: "That API key was not accepted. Check that you copied all of it.",
  api_key_revoked: "That API key has been revoked. Ask an administrator for a new one.",
  api_key_expired: "That API key has expired. Ask an administrator for a new one.",
  insufficient_scope: "This API key is not allowed to do that.",
  rate_limited: "Too many requests just now. Wait a moment and try again.",
  server_busy: "The server is busy with other speech right now. Try again in a moment.",
  network_error: "The server could not be reached. Check that it is running and try again.",
  internal_error: "Something went wrong on the server. Try again; if it keeps happening, tell the operator.",
  engine_unavailable: "The speech engine is not available right now.",
  not_found: "That is not available on this server.",
  invalid_request: "The request was not accepted.",
  missing_field: "Something required is missing.",
  invalid_json: "The request was not understood.",
  // voices and speech
  voice_not_found: "That voice does not exist (it may have been erased).",
  voice_not_allowed: "This API key may not use that voice.",
  voice_not_ready: "That voice is not ready to speak yet.",
  preset_voice: "Built-in voices cannot be changed or erased.",
  consent_revoked: "Consent for this voice was withdrawn, so it can no longer speak.",
  consent_expired: "The consent for this voice has ended, so it can no longer speak.",
  consent_not_verified: "This consent has not been verified.",
  consent_in_use: "That consent is already attached to a voice.",
  empty_text: "There is no text to speak.",
  no_speakable_text: "There is nothing in that text that can be spoken.",
  input_too_long: "The text is too long. Split it into shorter pieces.",
  invalid_speed: "Speed must be between 0.25 and 4.",
  unsupported_format: "That audio format is not supported.",
  invalid_sample_rate: "That sample rate is not supported.",
  // consent and enrollment
  consent_not_found: "That consent request no longer exists.",
  invalid_consent_request: "Some of the consent details are not acceptable.",
  invalid_expiry: "The consent end date is not acceptable.",
  challenge_expired: "The one-time code has expired (codes last ten minutes). Start a new consent.",
  challenge_mismatch: "The one-time code sent does not belong to this consent.",
  challenge_used: "This consent's one-time code was already used. Start a new consent to try again.",
  challenge_not_spoken: "The one-time code was not heard in the recording. Read the whole script, code included.",
  script_mismatch: "The recording does not say the consent script. Read it exactly as shown.",
  script_wrong_order: "The script was read out of order. Read the statement first, then the code.",
  recording_replayed: "This exact recording was sent before. Record the new script live.",
  speaker_mismatch: "The voice reading the consent script is not the voice in the samples.",
  multiple_speakers: "More than one person speaks in a sample file. Each file must have one speaker.",
  too_little_speech: "There is not enough speech. Add longer or more samples.",
  no_speech: "No speech was found in a file (only silence or noise?).",
  low_snr: "A file is too noisy. Record somewhere quieter, closer to the microphone.",
  clipping: "A file is distorted (clipped). Record at a lower level.",
  low_sample_rate: "A file's sample rate is too low. Record at a higher quality.",
  invalid_audio: "A file could not be read as audio.",
  audio_too_long: "The audio is too long.",
  silent_audio: "The audio is silent: there is nothing to transcribe.",
  audio_too_short: "The audio is too short to check (at least 1.5 seconds are needed).",
  missing_file: "Choose an audio file first.",
  decode_timeout: "A file took too long to read. Is it a normal audio file?",
  upload_too_large: "The upload is too large.",
  invalid_upload: "The upload could not be read.",
  missing_samples: "Add at least one voice sample.",
  too_many_files: "Too many sample files. Use fewer, longer ones.",
  invalid_name: "That name is not acceptable.",
  // audit
  invalid_since: "“Since” must be a sequence number or a date.",
  invalid_anchor: "The anchor must look like seq:hash.",
};

const MEASURES = {
  speech_s: "seconds of speech",
  snr_db: "signal-to-noise ratio (dB)",
  clipped_fraction: "share of clipped samples",
  sample_rate: "sample rate (Hz)",
  centroid_cosine: "similarity between the voices found",
  speaker_similarity: "voice similarity",
  statement_recall: "share of the statement recognised",
  code_recall: "share of the one-time code heard",
  script_heard: "parts of the script heard",
  ge2e_similarity: "voice similarity (GE2E)",
  campp_similarity: "voice similarity (CAM++)",
  order: "reading order",
  grammar_fit: "match with the script",
};

/** One plain sentence for an error, plus what the server said when it adds something. */
function explain(err) {
  if (!(err instanceof ApiError)) return "Something went wrong in this page: " + (err && err.message ? err.message : err);
  let text = FRIENDLY[err.code];
  if (err.code === "insufficient_scope") {
    const scope = /'([a-z:]+)'/.exec(err.message || "");
    if (scope) text += ` It needs the “${scope[1]}” permission.`;
    return text;
  }
  if (!text) return sentence(err.message || `The server refused the request (${err.status}).`);
  const d = err.details || {};
  if (d.file || d.measure) {
    const parts = [];
    if (d.file) parts.push(`File: ${String(d.file).split(", ").map(fileLabel).join(", ")}.`);
    if (d.measure) {
      const label = MEASURES[d.measure] || d.measure;
      if (d.value !== undefined && d.threshold !== undefined) parts.push(`Measured ${label}: ${fmtNum(d.value)} (needs ${fmtNum(d.threshold)}).`);
      else if (d.threshold !== undefined) parts.push(`Needs ${label} of at least ${fmtNum(d.threshold)}.`);
    }
    text += " " + parts.join(" ");
  } else if (err.message && !["invalid_api_key", "missing_api_key", "network_error", "internal_error"].includes(err.code)) {
    text += ` (${sentence(err.message)})`;
  }
  return text;
}

/** "samples[2] (take.wav)" -> "sample 3 (take.wav)"; "recording" -> "the consent recording". */
function fileLabel(label) {
  if (label === "recording") return "the consent recording";
  const m = /^samples\[(\d+)\] \((.*)\)$/.exec(String(label));
  return m ? `sample ${Number(m[1]) + 1} (${m[2]})` : String(label);
}

function capital(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

function sentence(s) {
  s = String(s).trim();
  if (!s) return s;
  s = s[0].toUpperCase() + s.slice(1);
  return /[.!?)]$/.test(s) ? s : s + ".";
}

// One format per kind of number, values and thresholds alike: seconds and decibels with one decimal,
// percentages with one, scores (similarities) with two; so "9.9 s (needs 10.0 s)", never "9.87 s (needs 10 s)".
function fmtNum(v, digits = 2) {
  if (typeof v !== "number") return String(v);
  return v.toFixed(digits);
}
const fmtSeconds = (v) => `${fmtNum(v, 1)} s`;
const fmtDb = (v) => `${fmtNum(v, 1)} dB`;
const fmtPct = (fraction) => `${fmtNum(100 * fraction, 1)} %`;

function fmtDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function setStatus(el, text, kind = "") {
  el.textContent = text || "";
  el.classList.toggle("error", kind === "error");
  el.classList.toggle("ok", kind === "ok");
}

function showError(el, err) {
  setStatus(el, explain(err), "error");
  if (err instanceof ApiError && err.status === 401 && state.key) signOut(explain(err) + " Sign in again.");
}

// ---------------------------------------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------------------------------------

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  ticket: null,
  clockOffsetMs: 0,
  recording: null, // {blob, name}
  samples: [], // {blob, name}
  voices: [],
  lastVoiceId: null,
  speech: null, // the running synthesis
  detectFile: null,
  transcribeFile: null, // a File, or {blob, name} recorded here
};

async function api(path, { method = "GET", json, form, signal, key } = {}) {
  const headers = { Authorization: `Bearer ${key || state.key}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body, signal, cache: "no-store" });
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(0, "network_error", "");
  }
  if (!res.ok) {
    let code = "http_error";
    let message = `HTTP ${res.status}`;
    let details = {};
    try {
      const payload = await res.json();
      if (payload && payload.error) {
        code = payload.error.code || code;
        message = payload.error.message || message;
        details = payload.error.details || {};
      }
    } catch (_) {
      /* not JSON: keep the status */
    }
    if (code === "http_error" && res.status === 404) code = "not_found";
    throw new ApiError(res.status, code, message, details);
  }
  return res;
}

async function apiJson(path, options) {
  const res = await api(path, options);
  return res.json();
}

// ---------------------------------------------------------------------------------------------------------
// Sign in, tabs
// ---------------------------------------------------------------------------------------------------------

async function signIn(key) {
  const err = $("signin-error");
  err.hidden = true;
  let voices = null;
  try {
    voices = (await apiJson("/v1/voices", { key })).voices;
  } catch (e) {
    if (!(e instanceof ApiError && e.code === "insufficient_scope")) {
      err.textContent = explain(e);
      err.hidden = false;
      return false;
    }
  }
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  let auditAllowed = false;
  try {
    // An empty page of the log (nothing after the largest sequence number): only asks "may I read it?".
    await api("/v1/audit?since=4611686018427387904");
    auditAllowed = true;
  } catch (_) {
    auditAllowed = false;
  }
  document.querySelector('[data-tab="audit"]').hidden = !auditAllowed;
  $("signin").hidden = true;
  $("tabs").hidden = false;
  $("session").hidden = false;
  $("session-label").textContent = `Signed in with key ${key.slice(0, 8)}…`;
  if (voices) renderVoices(voices);
  else setStatus($("voices-status"), explain(new ApiError(403, "insufficient_scope", "this API key lacks the 'voices:read' scope")), "error");
  showTab(location.hash.replace("#", "") || "enroll");
  return true;
}

function signOut(reason) {
  state.key = "";
  sessionStorage.removeItem(KEY_STORAGE);
  stopSpeech();
  for (const id of ["tabs", "session", "enroll", "voices", "playground", "watermark", "transcribe", "audit"]) $(id).hidden = true;
  $("signin").hidden = false;
  $("api-key").value = "";
  const err = $("signin-error");
  err.hidden = !reason;
  err.textContent = reason || "";
  $("api-key").focus();
}

function showTab(name) {
  const buttons = [...document.querySelectorAll("#tabs [data-tab]")];
  const target = buttons.find((b) => b.dataset.tab === name && !b.hidden) || buttons[0];
  for (const b of buttons) {
    const on = b === target;
    b.setAttribute("aria-current", on ? "page" : "false");
    $(b.dataset.tab).hidden = !on;
  }
  if (target.dataset.tab === "voices" || target.dataset.tab === "playground") refreshVoices();
  if (location.hash !== "#" + target.dataset.tab) history.replaceState(null, "", "#" + target.dataset.tab);
}

// ---------------------------------------------------------------------------------------------------------
// Confirmation dialog
// ---------------------------------------------------------------------------------------------------------

function confirmAction(title, text, okLabel) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "cancel";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

// ---------------------------------------------------------------------------------------------------------
// Microphone recording with a level meter
// ---------------------------------------------------------------------------------------------------------

const RECORDER_TYPES = [
  ["audio/webm;codecs=opus", "webm"],
  ["audio/ogg;codecs=opus", "ogg"],
  ["audio/webm", "webm"],
  ["audio/mp4", "m4a"],
];

function microphoneError(e) {
  if (!navigator.mediaDevices || !window.MediaRecorder) return "This browser cannot record here. Recording needs a secure page (https or localhost) and a current browser.";
  const name = e && e.name;
  if (name === "NotAllowedError" || name === "SecurityError") return "Microphone access was refused. Allow the microphone for this page, then try again.";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "No microphone was found. Connect one and try again.";
  if (name === "NotReadableError") return "The microphone is busy or not working (another application may be using it).";
  return "The microphone could not be started: " + (e && e.message ? e.message : String(e));
}

class Recorder {
  constructor(meter, onTick) {
    this.meter = meter;
    this.onTick = onTick;
    this.active = false;
  }

  async start() {
    if (!navigator.mediaDevices || !window.MediaRecorder) throw new Error("unsupported");
    // Raw capture: echo cancellation and noise suppression change the voice the checks compare.
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
    const [mime, ext] = RECORDER_TYPES.find(([t]) => MediaRecorder.isTypeSupported(t)) || ["", "webm"];
    this.ext = ext;
    this.chunks = [];
    this.recorder = new MediaRecorder(this.stream, mime ? { mimeType: mime, audioBitsPerSecond: 128000 } : undefined);
    this.recorder.addEventListener("dataavailable", (ev) => {
      if (ev.data && ev.data.size) this.chunks.push(ev.data);
    });
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(this.stream);
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 1024;
    source.connect(this.analyser);
    const frame = new Float32Array(this.analyser.fftSize);
    this.startedAt = performance.now();
    this.peak = 0;
    this.recorder.start(250);
    this.active = true;
    this.timer = setInterval(() => {
      this.analyser.getFloatTimeDomainData(frame);
      let sum = 0;
      for (const v of frame) sum += v * v;
      const rms = Math.sqrt(sum / frame.length);
      const level = Math.min(1, rms * 4); // speech at about -20 dBFS fills most of the bar
      this.peak = Math.max(this.peak, level);
      this.meter.value = level;
      this.onTick((performance.now() - this.startedAt) / 1000);
    }, 50);
  }

  /** Stop and return {blob, seconds, peak}; the microphone is released. */
  stop() {
    return new Promise((resolve) => {
      const seconds = (performance.now() - this.startedAt) / 1000;
      clearInterval(this.timer);
      this.active = false;
      this.recorder.addEventListener(
        "stop",
        () => {
          const type = this.recorder.mimeType || "audio/webm";
          for (const t of this.stream.getTracks()) t.stop();
          this.context.close();
          this.meter.value = 0;
          resolve({ blob: new Blob(this.chunks, { type }), seconds, peak: this.peak, ext: this.ext });
        },
        { once: true },
      );
      this.recorder.stop();
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Enrollment
// ---------------------------------------------------------------------------------------------------------

let consentRecorder = null;
let sampleRecorder = null;
let countdownTimer = null;

function defaultExpiry() {
  const d = new Date();
  d.setFullYear(d.getFullYear() + 1);
  return d.toISOString().slice(0, 10);
}

async function createConsent(ev) {
  ev.preventDefault();
  const status = $("enroll-status");
  const form = ev.target;
  const speaker = $("speaker-name").value.trim();
  const organisation = $("organisation").value.trim();
  const purpose = $("purpose").value.trim();
  const date = $("consent-expiry").value;
  const formError = $("consent-form-error");
  formError.textContent = "";
  if (!speaker || !organisation || !purpose || !date) {
    formError.textContent = "Fill in the speaker's name, the organisation, the purpose and the end date.";
    return;
  }
  const end = new Date(`${date}T23:59:59`);
  if (!(end > new Date())) {
    formError.textContent = "The consent end date must be in the future.";
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const res = await api("/v1/consents", {
      method: "POST",
      json: { speaker_name: speaker, organisation, purpose, expires_at: end.toISOString() },
    });
    const serverDate = Date.parse(res.headers.get("date") || "");
    state.clockOffsetMs = Number.isNaN(serverDate) ? 0 : serverDate - Date.now();
    state.ticket = await res.json();
    showScript(state.ticket);
  } catch (e) {
    formError.textContent = explain(e);
    if (e instanceof ApiError && e.status === 401) showError(status, e);
  } finally {
    button.disabled = false;
  }
}

function showScript(ticket) {
  const quote = $("consent-script");
  quote.replaceChildren();
  const at = ticket.script.lastIndexOf(ticket.challenge);
  if (at >= 0) {
    quote.append(ticket.script.slice(0, at), h("mark", { class: "challenge", text: ticket.challenge }), ticket.script.slice(at + ticket.challenge.length));
  } else {
    quote.append(ticket.script, " ", h("mark", { class: "challenge", text: ticket.challenge }));
  }
  quote.dataset.consentId = ticket.consent_id;
  $("enroll-step-consent").hidden = true;
  $("enroll-step-record").hidden = false;
  $("enroll-results").hidden = true;
  state.recording = null;
  state.samples = [];
  renderSamples();
  resetRecordingUi();
  setStatus($("enroll-status"), "");
  startCountdown(Date.parse(ticket.challenge_expires_at));
  $("record-start").focus();
}

function startCountdown(expiresAt) {
  clearInterval(countdownTimer);
  const out = $("challenge-countdown");
  const tick = () => {
    const left = Math.max(0, expiresAt - (Date.now() + state.clockOffsetMs));
    const s = Math.floor(left / 1000);
    out.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    out.dataset.secondsLeft = String(s);
    if (left <= 0) {
      clearInterval(countdownTimer);
      out.textContent = "expired";
      setStatus($("enroll-status"), FRIENDLY.challenge_expired, "error");
      $("enroll-submit").disabled = true;
    }
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
}

function resetRecordingUi() {
  $("record-start").hidden = false;
  $("record-start").disabled = false;
  $("record-stop").disabled = true;
  $("record-retry").hidden = true;
  const preview = $("record-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.removeAttribute("src");
  preview.hidden = true;
  setStatus($("record-status"), "Not recording.");
  updateSubmit();
}

async function startConsentRecording() {
  if (sampleRecorder && sampleRecorder.active) return;
  const status = $("record-status");
  consentRecorder = new Recorder($("record-level"), (s) => setStatus(status, `Recording… ${fmtSeconds(s)}`));
  $("record-start").disabled = true;
  try {
    await consentRecorder.start();
  } catch (e) {
    consentRecorder = null;
    $("record-start").disabled = false;
    setStatus(status, microphoneError(e), "error");
    return;
  }
  $("record-status").dataset.state = "recording";
  $("record-stop").disabled = false;
  $("record-stop").focus();
}

async function stopConsentRecording() {
  if (!consentRecorder || !consentRecorder.active) return;
  $("record-stop").disabled = true;
  const take = await consentRecorder.stop();
  consentRecorder = null;
  const status = $("record-status");
  status.dataset.state = "recorded";
  state.recording = { blob: take.blob, name: `consent.${take.ext}` };
  const preview = $("record-preview");
  preview.src = URL.createObjectURL(take.blob);
  preview.hidden = false;
  $("record-start").hidden = true;
  $("record-retry").hidden = false;
  let text = `Recorded ${fmtSeconds(take.seconds)} (${fmtBytes(take.blob.size)}). Listen back, or record again.`;
  let kind = "ok";
  if (take.peak < 0.02) {
    text = `Recorded ${fmtSeconds(take.seconds)}, but almost nothing was heard. Check the microphone and record again.`;
    kind = "error";
  } else if (take.seconds < 3) {
    text = `Recorded only ${fmtSeconds(take.seconds)}. Read the whole script, then press Stop.`;
    kind = "error";
  }
  setStatus(status, text, kind);
  updateSubmit();
}

function retryConsentRecording() {
  resetRecordingUi();
  state.recording = null;
  updateSubmit();
  startConsentRecording();
}

function addSamples(files) {
  for (const file of files) {
    if (!file || !file.size) continue;
    state.samples.push({ blob: file, name: file.name || "sample" });
  }
  renderSamples();
}

function renderSamples() {
  const list = $("sample-list");
  list.replaceChildren(
    ...state.samples.map((s, i) =>
      h(
        "li",
        {},
        h("span", { text: `${s.name} (${fmtBytes(s.blob.size)})` }),
        h("button", {
          type: "button",
          class: "link",
          "aria-label": `Remove ${s.name}`,
          text: "Remove",
          onclick: () => {
            state.samples.splice(i, 1);
            renderSamples();
          },
        }),
      ),
    ),
  );
  updateSubmit();
}

async function startSampleRecording() {
  if (consentRecorder && consentRecorder.active) return;
  const status = $("enroll-status");
  sampleRecorder = new Recorder($("record-level"), (s) => setStatus(status, `Recording a sample… ${fmtSeconds(s)}`));
  try {
    await sampleRecorder.start();
  } catch (e) {
    sampleRecorder = null;
    setStatus(status, microphoneError(e), "error");
    return;
  }
  $("sample-record-start").disabled = true;
  $("sample-record-stop").disabled = false;
}

async function stopSampleRecording() {
  if (!sampleRecorder || !sampleRecorder.active) return;
  const take = await sampleRecorder.stop();
  sampleRecorder = null;
  $("sample-record-start").disabled = false;
  $("sample-record-stop").disabled = true;
  state.samples.push({ blob: take.blob, name: `recorded-sample-${state.samples.length + 1}.${take.ext}` });
  setStatus($("enroll-status"), `Added a ${fmtSeconds(take.seconds)} recorded sample.`);
  renderSamples();
}

function updateSubmit() {
  const expired = $("challenge-countdown").dataset.secondsLeft === "0";
  $("enroll-submit").disabled = !(state.ticket && state.recording && state.samples.length && !expired);
}

async function submitEnrollment() {
  const ticket = state.ticket;
  if (!ticket || !state.recording || !state.samples.length) return;
  const status = $("enroll-status");
  const button = $("enroll-submit");
  button.disabled = true;
  setStatus(status, "Checking the recording and the samples… this can take a minute.");
  status.dataset.state = "checking";
  const form = new FormData();
  form.append("challenge", ticket.challenge);
  const name = $("voice-name").value.trim();
  if (name) form.append("name", name);
  form.append("recording", state.recording.blob, state.recording.name);
  for (const s of state.samples) form.append("samples", s.blob, s.name);
  try {
    const voice = await apiJson(`/v1/consents/${encodeURIComponent(ticket.consent_id)}/enroll`, { method: "POST", form });
    state.lastVoiceId = voice.voice_id;
    showResults(true, voice.scores || {}, null, voice);
    refreshVoices();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      showError(status, e);
      return;
    }
    let checks = {};
    try {
      const view = await apiJson(`/v1/consents/${encodeURIComponent(ticket.consent_id)}`);
      checks = view.scores || {};
    } catch (_) {
      /* the refusal alone still says what failed */
    }
    showResults(false, checks, e, null);
  } finally {
    status.dataset.state = "done";
  }
}

function showResults(ok, checks, error, voice) {
  clearInterval(countdownTimer);
  $("enroll-step-record").hidden = true;
  const box = $("enroll-results");
  box.hidden = false;
  box.dataset.outcome = ok ? "created" : "refused";
  const outcome = $("enroll-outcome");
  $("enroll-try").hidden = !ok;
  if (ok) {
    outcome.textContent = `Voice “${voice.name}” was created (id ${voice.voice_id}). It can speak now.`;
  } else {
    outcome.textContent = "The voice was not created. " + explain(error);
  }
  const list = $("check-list");
  const heading = { passed: "Passed: ", failed: "Failed: ", skipped: "Not checked: " };
  const items = describeChecks(checks, ok ? null : error).map(([result, text]) =>
    h("li", { class: result, dataset: { result } }, h("strong", { text: heading[result] || "Not reached: " }), text),
  );
  list.replaceChildren(...items);
  setStatus($("enroll-status"), "");
  outcome.setAttribute("tabindex", "-1");
  outcome.focus();
}

/** The enrollment checks as [result, sentence] pairs, in the order the server runs them. */
function describeChecks(checks, error) {
  const t = checks.thresholds || {};
  const code = error instanceof ApiError ? error.code : null;
  const failedFile = error instanceof ApiError ? error.details.file : null;
  const out = [];
  const fileText = (m, minSpeech) => {
    const bits = [`${fmtSeconds(m.duration_s)} long with ${fmtSeconds(m.speech_s)} of speech`];
    if (minSpeech !== undefined) bits[0] += ` (needs ${fmtSeconds(minSpeech)})`;
    bits.push(`signal-to-noise ${fmtDb(m.snr_db)}` + (t.min_snr_db !== undefined ? ` (needs ${fmtDb(t.min_snr_db)})` : ""));
    bits.push(`${fmtPct(m.clipped_fraction)} clipped`);
    bits.push(`recorded at ${m.sample_rate} Hz`);
    return bits.join(", ");
  };
  const fileCodes = ["no_speech", "low_snr", "clipping", "low_sample_rate", "invalid_audio", "audio_too_long", "decode_timeout"];
  const fileResult = (label) => {
    const failed = failedFile === label && (fileCodes.includes(code) || (code === "too_little_speech" && label === "recording"));
    return failed ? "failed" : "passed";
  };
  if (checks.recording) out.push([fileResult("recording"), `Consent recording: ${fileText(checks.recording, t.min_recording_speech_s)}.`]);
  for (const m of checks.samples || []) out.push([fileResult(m.file), `${capital(fileLabel(m.file))}: ${fileText(m)}.`]);
  if (checks.total_speech_s !== undefined) out.push(["passed", `Speech across all samples: ${fmtSeconds(checks.total_speech_s)} (needs ${fmtSeconds(t.min_total_speech_s)}).`]);
  else if (code === "too_little_speech" && failedFile !== "recording") out.push(["failed", `Speech across all samples: ${fmtSeconds(error.details.value)} (needs ${fmtSeconds(error.details.threshold)}).`]);
  for (const [file, split] of Object.entries(checks.splits || {})) {
    const failed = code === "multiple_speakers" && failedFile === file;
    const name = capital(fileLabel(file));
    const unknown = split.centroid_cosine === null || split.centroid_cosine === undefined;
    if (unknown && !failed) {
      // Too short to split in two: the check was not made, so it is not shown as passed.
      out.push(["skipped", `${name}: one speaker or several? Too little speech to tell, so this was not checked.`]);
      continue;
    }
    const text = `${name}: one speaker (the most different parts still match at ${fmtNum(split.centroid_cosine)}, needs ${fmtNum(t.split_threshold)}).`;
    out.push([failed ? "failed" : "passed", failed ? `${name}: more than one speaker (similarity ${fmtNum(split.centroid_cosine)}, needs ${fmtNum(t.split_threshold)}).` : text]);
  }
  if (checks.script) {
    const failed = ["script_mismatch", "script_wrong_order", "challenge_not_spoken"].includes(code);
    out.push([failed ? "failed" : "passed", `Consent script read aloud: ${describeScript(checks.script, failed ? error.details : {})}.`]);
  }
  if (checks.speaker_similarity !== undefined) {
    const failed = code === "speaker_mismatch" && failedFile === "recording";
    out.push([failed ? "failed" : "passed", `Same voice in the consent recording and the samples: similarity ${fmtNum(checks.speaker_similarity)} (needs ${fmtNum(t.same_speaker_threshold)}).`]);
  }
  for (const [file, sim] of Object.entries(checks.file_similarity || {})) {
    // The recording against each sample file on its own, by two encoders (GE2E, and CAM++ when enabled).
    const failed = code === "speaker_mismatch" && failedFile === file;
    const bits = [`GE2E ${fmtNum(sim.ge2e)} (needs ${fmtNum(t.file_ge2e_threshold)})`];
    if (sim.campp !== null && sim.campp !== undefined) bits.push(`CAM++ ${fmtNum(sim.campp)} (needs ${fmtNum(t.file_campp_threshold)})`);
    out.push([failed ? "failed" : "passed", `Same voice as ${fileLabel(file)}: ${bits.join(", ")}.`]);
  }
  if (error && !out.some(([r]) => r === "failed")) out.push(["failed", explain(error)]);
  return out;
}

const SCRIPT_PARTS = { speaker_name: "the speaker's name", organization: "the organisation", purpose: "the purpose", code: "the one-time code" };

/** What the script check reports: each part of the script heard (Whisper), or the older two figures; on a
 * refusal, the parts not heard and what was heard in their place (sent to this caller only). */
function describeScript(s, details) {
  const bits = [];
  const parts = Object.keys(SCRIPT_PARTS).filter((p) => s[`${p}_recall`] !== undefined);
  if (parts.length) {
    bits.push(parts.map((p) => `${SCRIPT_PARTS[p]} ${fmtPct(s[`${p}_recall`])} heard`).join(", "));
  } else {
    if (s.statement_recall !== undefined) bits.push(`${fmtPct(s.statement_recall)} of the statement recognised`);
    if (s.code_recall !== undefined) bits.push(`${fmtPct(s.code_recall)} of the one-time code heard`);
  }
  const heard = (details && details.heard) || {};
  for (const p of (details && details.not_heard) || []) {
    const said = heard[p];
    bits.push(`not heard: ${SCRIPT_PARTS[p] || p}` + (said ? ` (heard “${said}”)` : said === "" ? " (nothing heard in its place)" : ""));
  }
  return bits.join("; ") || "checked";
}

function restartEnrollment() {
  state.ticket = null;
  state.recording = null;
  state.samples = [];
  clearInterval(countdownTimer);
  $("enroll-results").hidden = true;
  $("enroll-step-record").hidden = true;
  $("enroll-step-consent").hidden = false;
  $("speaker-name").focus();
}

// ---------------------------------------------------------------------------------------------------------
// Voice library
// ---------------------------------------------------------------------------------------------------------

async function refreshVoices() {
  if (!state.key) return;
  try {
    renderVoices((await apiJson("/v1/voices")).voices);
    if ($("voices-status").classList.contains("error")) setStatus($("voices-status"), "");
  } catch (e) {
    showError($("voices-status"), e);
  }
}

const STATUS_WORDS = { active: "Active", revoked: "Revoked (consent withdrawn)", expired: "Expired (consent ended)", pending: "Pending" };

function renderVoices(voices) {
  state.voices = voices;
  const rows = voices.map((v) => {
    const actions = h("td", { class: "actions" });
    if (v.kind === "cloned") {
      if (v.status === "active") actions.append(h("button", { type: "button", class: "secondary", text: "Revoke", "aria-label": `Revoke consent for ${v.name}`, onclick: () => revokeVoice(v) }));
      actions.append(h("button", { type: "button", class: "danger", text: "Erase", "aria-label": `Erase ${v.name}`, onclick: () => eraseVoice(v) }));
    }
    return h(
      "tr",
      { dataset: { voiceId: v.voice_id, status: v.status } },
      h("td", { text: v.name }),
      h("td", {}, h("code", { text: v.voice_id })),
      h("td", { text: v.kind === "cloned" ? "Cloned" : "Built-in" }),
      h("td", { class: `status-${v.status}`, text: STATUS_WORDS[v.status] || v.status }),
      h("td", { text: v.kind === "cloned" ? fmtDate(v.expires_at) : "—" }),
      actions,
    );
  });
  $("voice-rows").replaceChildren(...rows);
  const select = $("speak-voice");
  const current = select.value;
  const usable = voices.filter((v) => v.status === "active");
  select.replaceChildren(...usable.map((v) => h("option", { value: v.voice_id, text: v.kind === "cloned" ? `${v.name} (cloned)` : v.name })));
  const wanted = state.lastVoiceId && usable.some((v) => v.voice_id === state.lastVoiceId) ? state.lastVoiceId : current;
  if (wanted && usable.some((v) => v.voice_id === wanted)) select.value = wanted;
}

async function revokeVoice(v) {
  const ok = await confirmAction("Revoke consent?", `“${v.name}” will stop speaking at once. This cannot be undone; the voice can only speak again with a newly recorded consent.`, "Revoke");
  if (!ok) return;
  try {
    await apiJson(`/v1/voices/${encodeURIComponent(v.voice_id)}`, { method: "PATCH", json: { status: "revoked" } });
    setStatus($("voices-status"), `Consent for “${v.name}” was revoked; the voice no longer speaks.`, "ok");
    await refreshVoices();
  } catch (e) {
    showError($("voices-status"), e);
  }
}

async function eraseVoice(v) {
  const ok = await confirmAction("Erase this voice?", `Everything kept for “${v.name}” (voice data, samples and the consent recording) will be deleted for good. Only an audit entry remains.`, "Erase");
  if (!ok) return;
  try {
    const out = await apiJson(`/v1/voices/${encodeURIComponent(v.voice_id)}`, { method: "DELETE" });
    setStatus($("voices-status"), `“${v.name}” was erased (${out.blobs_deleted} stored files deleted).`, "ok");
    await refreshVoices();
  } catch (e) {
    showError($("voices-status"), e);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Playground: play while the audio streams
// ---------------------------------------------------------------------------------------------------------

/** Raw 16-bit mono PCM chunks as a WAV file (a 44-byte header before the same bytes). */
function wavFromPcm(chunks, rate) {
  const size = chunks.reduce((n, c) => n + c.length, 0);
  const header = new DataView(new ArrayBuffer(44));
  const ascii = (at, text) => [...text].forEach((ch, i) => header.setUint8(at + i, ch.charCodeAt(0)));
  ascii(0, "RIFF");
  header.setUint32(4, 36 + size, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  header.setUint32(16, 16, true); // fmt chunk size
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, rate, true);
  header.setUint32(28, rate * 2, true); // bytes per second
  header.setUint16(32, 2, true); // block align
  header.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  header.setUint32(40, size, true);
  return new Blob([header.buffer, ...chunks], { type: "audio/wav" });
}

/** Schedules raw 16-bit PCM chunks back to back in Web Audio as they arrive. */
class PcmPlayer {
  constructor(context, rate) {
    this.context = context;
    this.rate = rate;
    this.carry = null;
    this.next = 0;
    this.sources = new Set();
    this.scheduled = 0;
  }

  push(bytes) {
    if (this.carry) {
      const joined = new Uint8Array(this.carry.length + bytes.length);
      joined.set(this.carry);
      joined.set(bytes, this.carry.length);
      bytes = joined;
      this.carry = null;
    }
    const frames = bytes.length >> 1;
    if (bytes.length & 1) this.carry = bytes.slice(bytes.length - 1);
    if (!frames) return false;
    const view = new DataView(bytes.buffer, bytes.byteOffset, frames * 2);
    const buffer = this.context.createBuffer(1, frames, this.rate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < frames; i++) data[i] = view.getInt16(i * 2, true) / 32768;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const now = this.context.currentTime;
    if (this.next < now + 0.02) this.next = now + 0.05; // first chunk, or the network fell behind
    source.start(this.next);
    this.next += buffer.duration;
    this.scheduled += buffer.duration;
    this.sources.add(source);
    source.addEventListener("ended", () => this.sources.delete(source));
    return true;
  }

  /** Resolves when everything scheduled has played. */
  finished() {
    const wait = Math.max(0, this.next - this.context.currentTime);
    return new Promise((resolve) => setTimeout(resolve, wait * 1000 + 50));
  }

  stop() {
    for (const s of this.sources) {
      try {
        s.stop();
      } catch (_) {
        /* already stopped */
      }
    }
    this.sources.clear();
  }
}

/** A streamed WAV: parse the header (its sizes say "until the end"), then play the samples as PCM. */
class WavPlayer {
  constructor(context) {
    this.context = context;
    this.head = new Uint8Array(0);
    this.pcm = null;
  }

  push(bytes) {
    if (this.pcm) return this.pcm.push(bytes);
    const joined = new Uint8Array(this.head.length + bytes.length);
    joined.set(this.head);
    joined.set(bytes, this.head.length);
    this.head = joined;
    const view = new DataView(joined.buffer);
    let rate = PCM_RATE;
    let at = 12;
    while (at + 8 <= joined.length) {
      const id = String.fromCharCode(...joined.subarray(at, at + 4));
      const size = view.getUint32(at + 4, true);
      if (id === "fmt " && at + 16 <= joined.length) rate = view.getUint32(at + 12, true);
      if (id === "data") {
        this.pcm = new PcmPlayer(this.context, rate);
        this.head = null;
        return this.pcm.push(joined.subarray(at + 8));
      }
      at += 8 + size + (size & 1);
    }
    return false;
  }

  finished() {
    return this.pcm ? this.pcm.finished() : Promise.resolve();
  }

  stop() {
    if (this.pcm) this.pcm.stop();
  }
}

/** MP3 through Media Source Extensions: the audio element plays while bytes are still arriving. */
class StreamingElementPlayer {
  constructor(audio, mime) {
    this.audio = audio;
    this.queue = [];
    this.ended = false;
    this.source = new MediaSource();
    this.url = URL.createObjectURL(this.source);
    audio.src = this.url;
    audio.hidden = false;
    this.ready = new Promise((resolve) => {
      this.source.addEventListener(
        "sourceopen",
        () => {
          this.buffer = this.source.addSourceBuffer(mime);
          this.buffer.mode = "sequence";
          this.buffer.addEventListener("updateend", () => this.pump());
          resolve();
        },
        { once: true },
      );
    });
    this.started = false;
  }

  /** Queue bytes; returns false: first audio is reported by the element's "playing" event instead. */
  push(bytes) {
    this.queue.push(bytes);
    this.ready.then(() => this.pump());
    if (!this.started) {
      this.started = true;
      this.audio.play().catch(() => {});
    }
    return false;
  }

  pump() {
    if (!this.buffer || this.buffer.updating) return;
    if (this.queue.length) {
      this.buffer.appendBuffer(this.queue.shift());
    } else if (this.ended && this.source.readyState === "open") {
      this.source.endOfStream();
    }
  }

  end() {
    this.ended = true;
    this.ready.then(() => this.pump());
  }

  finished() {
    if (this.audio.ended || this.audio.paused) return Promise.resolve();
    return new Promise((resolve) => this.audio.addEventListener("ended", resolve, { once: true }));
  }

  stop() {
    this.audio.pause();
  }
}

function stopSpeech() {
  const run = state.speech;
  if (!run) return;
  state.speech = null;
  run.controller.abort();
  if (run.player) run.player.stop();
  if (run.context) run.context.close();
  $("speak-audio").pause();
  $("player").dataset.state = "stopped";
  $("speak-stop").disabled = true;
  $("speak-go").disabled = false;
}

async function speak(ev) {
  ev.preventDefault();
  stopSpeech();
  const status = $("speak-status");
  const text = $("speak-text").value;
  const voice = $("speak-voice").value;
  const format = $("speak-format").value;
  const speed = Number($("speak-speed").value);
  if (!text.trim()) {
    setStatus(status, FRIENDLY.empty_text, "error");
    return;
  }
  if (!voice) {
    setStatus(status, "Choose a voice first.", "error");
    return;
  }
  const playerBox = $("player");
  const audio = $("speak-audio");
  const download = $("speak-download");
  const rawDownload = $("speak-download-raw");
  for (const link of [download, rawDownload]) {
    if (link.href) URL.revokeObjectURL(link.href);
    link.hidden = true;
    link.removeAttribute("href");
  }
  if (audio.src) URL.revokeObjectURL(audio.src);
  audio.removeAttribute("src");
  audio.hidden = true;
  delete playerBox.dataset.firstAudioMs;
  delete playerBox.dataset.generationId;

  const run = { controller: new AbortController(), player: null, context: null };
  state.speech = run;
  // Web Audio needs the click's user activation: create the context now, before any await.
  const streamsPcm = format === "pcm" || format === "wav";
  const mseType = format === "mp3" && window.MediaSource && MediaSource.isTypeSupported("audio/mpeg") ? "audio/mpeg" : null;
  if (streamsPcm) {
    run.context = new AudioContext();
    run.context.resume();
    run.player = format === "pcm" ? new PcmPlayer(run.context, PCM_RATE) : new WavPlayer(run.context);
  }
  $("speak-go").disabled = true;
  $("speak-stop").disabled = false;
  playerBox.dataset.state = "requesting";
  setStatus(status, "Starting…");
  const t0 = performance.now();
  const body = { model: "tts-1", input: text, voice, response_format: format, speed };
  if (format === "pcm") body.sample_rate = PCM_RATE;
  const chunks = [];
  let bytes = 0;
  try {
    const res = await api("/v1/audio/speech", { method: "POST", json: body, signal: run.controller.signal });
    playerBox.dataset.generationId = res.headers.get("x-generation-id") || "";
    let first = true;
    const markFirstAudio = () => {
      if (!first || state.speech !== run) return;
      first = false;
      playerBox.dataset.firstAudioMs = String(Math.round(performance.now() - t0));
      playerBox.dataset.state = "playing";
    };
    if (mseType) {
      run.player = new StreamingElementPlayer(audio, mseType);
      audio.addEventListener("playing", markFirstAudio, { once: true });
    }
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (state.speech !== run) return;
      chunks.push(value);
      bytes += value.length;
      if (run.player && run.player.push(value)) markFirstAudio();
      setStatus(status, `${playerBox.dataset.firstAudioMs ? `Playing (first audio after ${playerBox.dataset.firstAudioMs} ms). ` : "Receiving… "}${fmtBytes(bytes)} received.`);
    }
    const type = res.headers.get("content-type") || "application/octet-stream";
    const blob = new Blob(chunks, { type });
    // Raw PCM has no header, so no player opens it: the download and the replay get it wrapped as WAV
    // (the same samples), and the raw bytes stay one click away.
    const playable = format === "pcm" ? wavFromPcm(chunks, PCM_RATE) : blob;
    download.href = URL.createObjectURL(playable);
    download.download = `speech.${format === "pcm" ? "wav" : EXTENSIONS[format] || "bin"}`;
    download.textContent = format === "pcm" ? "Download (WAV)" : "Download";
    download.hidden = false;
    download.dataset.bytes = String(blob.size);
    if (format === "pcm") {
      rawDownload.href = URL.createObjectURL(blob);
      rawDownload.download = "speech.pcm";
      rawDownload.hidden = false;
    }
    const total = `${fmtBytes(bytes)} in ${fmtSeconds((performance.now() - t0) / 1000)}`;
    if (run.player) {
      if (run.player.end) run.player.end();
      setStatus(status, `All audio received (${total}); first audio after ${playerBox.dataset.firstAudioMs || "?"} ms.`, "ok");
      playerBox.dataset.state = "received";
      await run.player.finished();
      if (state.speech === run) {
        audio.src = URL.createObjectURL(playable); // to play it again, or seek
        audio.hidden = false;
      }
    } else {
      // Formats a browser cannot play while they stream: play the finished file.
      audio.src = URL.createObjectURL(blob);
      audio.hidden = false;
      playerBox.dataset.state = "playing";
      playerBox.dataset.firstAudioMs = String(Math.round(performance.now() - t0));
      setStatus(status, `All audio received (${total}). ${format.toUpperCase()} plays once complete; choose MP3, WAV or PCM to hear it while it streams.`, "ok");
      await audio.play().catch(() => {});
    }
    if (state.speech === run) {
      playerBox.dataset.state = "done";
      $("speak-go").disabled = false;
      $("speak-stop").disabled = true;
      state.speech = null;
      if (run.context) run.context.close();
    }
  } catch (e) {
    if (e && e.name === "AbortError") return;
    if (state.speech === run) stopSpeech();
    playerBox.dataset.state = "error";
    showError(status, e);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Watermark check
// ---------------------------------------------------------------------------------------------------------

function chooseDetectFile(file) {
  state.detectFile = file || null;
  $("detect-file-name").textContent = file ? `${file.name} (${fmtBytes(file.size)})` : "";
  $("detect-go").disabled = !file;
  $("detect-result").hidden = true;
}

async function detect(ev) {
  ev.preventDefault();
  const file = state.detectFile;
  if (!file) return;
  const status = $("detect-status");
  const box = $("detect-result");
  box.hidden = true;
  $("detect-go").disabled = true;
  setStatus(status, "Listening for the watermark…");
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const out = await apiJson("/v1/watermark/detect", { method: "POST", form });
    renderDetection(out);
    setStatus(status, "");
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && e.code === "not_found") setStatus(status, "This server does not offer a watermark check yet.", "error");
    else showError(status, e);
  } finally {
    $("detect-go").disabled = false;
  }
}

function renderDetection(out) {
  const box = $("detect-result");
  box.hidden = false;
  const present = Boolean(out.present);
  box.dataset.present = String(present);
  $("detect-verdict").textContent = present ? "Watermark found: this audio was made by this voxvault." : "No voxvault watermark was found in this audio.";
  const facts = [];
  const add = (term, value, field) => {
    if (value === undefined || value === null || value === "") return;
    facts.push(h("dt", { text: term }), h("dd", { text: String(value), dataset: { field: field || "" } }));
  };
  if (typeof out.confidence === "number") add("Confidence", fmtPct(out.confidence), "confidence");
  add("Payload", out.payload, "payload");
  if (typeof out.duration_s === "number") add("Audio length", fmtSeconds(out.duration_s), "duration_s");
  if (typeof out.bit_errors === "number") add("Bit errors corrected", out.bit_errors);
  if (typeof out.false_alarm_bound === "number" && present) add("Chance of a false match", `below ${out.false_alarm_bound.toExponential(1)}`);
  const gen = out.generation || out.record;
  if (gen && typeof gen === "object") {
    const labels = {
      generation_id: "Generation id",
      watermark_id: "Watermark id",
      voice_id: "Voice",
      key_id: "Made with API key",
      created_at: "Made at",
      duration_s: "Duration (s)",
      format: "Format",
      text_chars: "Text length (characters)",
      output_sha256: "Output SHA-256",
      text_sha256: "Text SHA-256",
    };
    for (const [k, v] of Object.entries(gen)) {
      if (v === null || typeof v === "object") continue;
      let shown = k.endsWith("_at") ? fmtDate(v) : k === "duration_s" ? fmtSeconds(v) : v;
      const voice = k === "voice_id" && state.voices.find((x) => x.voice_id === v);
      if (voice && voice.name !== v) shown = `${voice.name} (${v})`;
      add(labels[k] || capital(k.replace(/_/g, " ")), shown, `generation.${k}`);
    }
  } else if (present) {
    add("Generation record", "not shown: it needs a key with the audit:read permission in the organisation that made it", "generation");
  }
  $("detect-facts").replaceChildren(...facts);
}

// ---------------------------------------------------------------------------------------------------------
// Transcribe: ElevenLabs-style speech to text with speakers, shown as a timeline and a transcript
// ---------------------------------------------------------------------------------------------------------

const SPEAKER_COLOURS = 8; // .speaker-0 … .speaker-7 in style.css
let transcribeRecorder = null;

function chooseTranscribeFile(file, name) {
  state.transcribeFile = file ? { blob: file, name: name || file.name } : null;
  $("transcribe-file-name").textContent = file ? `${name || file.name} (${fmtBytes(file.size)})` : "";
  $("transcribe-go").disabled = !file;
  $("transcribe-result").hidden = true;
}

async function startTranscribeRecording() {
  const status = $("transcribe-status");
  transcribeRecorder = new Recorder($("transcribe-level"), (s) => setStatus(status, `Recording… ${fmtSeconds(s)}`));
  try {
    await transcribeRecorder.start();
  } catch (e) {
    transcribeRecorder = null;
    setStatus(status, microphoneError(e), "error");
    return;
  }
  status.dataset.state = "recording";
  $("transcribe-record-start").disabled = true;
  $("transcribe-record-stop").disabled = false;
}

async function stopTranscribeRecording() {
  if (!transcribeRecorder) return;
  const { blob, seconds, ext } = await transcribeRecorder.stop();
  transcribeRecorder = null;
  $("transcribe-record-start").disabled = false;
  $("transcribe-record-stop").disabled = true;
  chooseTranscribeFile(blob, `recording.${ext}`);
  const status = $("transcribe-status");
  setStatus(status, `Recorded ${fmtSeconds(seconds)}. Press Transcribe.`);
  status.dataset.state = "recorded";
}

/** Consecutive words of one speaker as {speaker, start, end, text}. */
function speakerRuns(words) {
  const runs = [];
  for (const w of words) {
    if (w.type !== "word") continue;
    const speaker = w.speaker_id || "";
    const last = runs[runs.length - 1];
    if (last && last.speaker === speaker) {
      last.end = w.end;
      last.text += " " + w.text;
    } else {
      runs.push({ speaker, start: w.start, end: w.end, text: w.text });
    }
  }
  return runs;
}

function speakerLabel(id) {
  const m = /^speaker_(\d+)$/.exec(id || "");
  return m ? `Speaker ${Number(m[1]) + 1}` : id || "Speaker";
}

async function transcribe(ev) {
  ev.preventDefault();
  const chosen = state.transcribeFile;
  if (!chosen) return;
  const status = $("transcribe-status");
  $("transcribe-result").hidden = true;
  $("transcribe-go").disabled = true;
  const diarize = $("transcribe-diarize").checked;
  const speakers = $("transcribe-speakers").value.trim();
  status.dataset.state = "working";
  setStatus(status, diarize ? "Transcribing and telling the speakers apart…" : "Transcribing…");
  const form = new FormData();
  form.append("model_id", "scribe_v1");
  form.append("file", chosen.blob, chosen.name);
  form.append("diarize", String(diarize));
  form.append("timestamps_granularity", "word");
  if (diarize && speakers) form.append("num_speakers", speakers);
  const started = performance.now();
  try {
    const out = await apiJson("/v1/speech-to-text", { method: "POST", form });
    renderTranscript(out, diarize, (performance.now() - started) / 1000);
    status.dataset.state = "done";
    setStatus(status, "");
  } catch (e) {
    status.dataset.state = "error";
    showError(status, e);
  } finally {
    $("transcribe-go").disabled = false;
  }
}

function renderTranscript(out, diarize, tookS) {
  const box = $("transcribe-result");
  const words = out.words || [];
  const runs = speakerRuns(words);
  const duration = Math.max(out.audio_duration_secs || 0, ...runs.map((r) => r.end), 0.001);
  const order = [];
  for (const r of runs) if (!order.includes(r.speaker)) order.push(r.speaker);
  const colour = (speaker) => `speaker-${Math.max(0, order.indexOf(speaker)) % SPEAKER_COLOURS}`;
  const who = diarize ? `${order.length} speaker${order.length === 1 ? "" : "s"}, ` : "";
  $("transcribe-summary").textContent = `${fmtSeconds(out.audio_duration_secs || 0)} of audio, ${who}language ${out.language_code || "?"} (transcribed in ${fmtSeconds(tookS)})`;
  $("transcribe-legend").replaceChildren(
    ...(diarize ? order : []).map((sp) => h("li", { class: colour(sp), dataset: { speaker: sp } }, h("span", { class: "swatch" }), speakerLabel(sp))),
  );
  // The timeline: one bar per run of words, placed by time (CSSOM styles are allowed by the page's CSP).
  const bars = runs.map((r) => {
    const bar = h("span", {
      class: `bar ${colour(r.speaker)}`,
      title: `${speakerLabel(r.speaker)}: ${fmtNum(r.start, 1)}–${fmtNum(r.end, 1)} s`,
      dataset: { speaker: r.speaker, start: r.start, end: r.end },
    });
    bar.style.left = `${(100 * r.start) / duration}%`;
    bar.style.width = `${Math.max(0.3, (100 * (r.end - r.start)) / duration)}%`;
    return bar;
  });
  const timeline = $("transcribe-timeline");
  timeline.hidden = !diarize;
  timeline.replaceChildren(...bars);
  const lines = runs.map((r) =>
    h(
      "p",
      { class: `line ${colour(r.speaker)}`, dataset: { speaker: r.speaker } },
      h("span", { class: "when", text: `${fmtNum(r.start, 1)} s` }),
      diarize ? h("strong", { class: "who", text: speakerLabel(r.speaker) }) : "",
      h("span", { class: "said", text: r.text }),
    ),
  );
  if (!lines.length) lines.push(h("p", { class: "help", text: "No words were heard in this audio." }));
  $("transcribe-lines").replaceChildren(...lines);
  box.dataset.speakers = String(order.length);
  box.hidden = false;
}

// ---------------------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------------------

async function loadAudit(ev) {
  if (ev) ev.preventDefault();
  const status = $("audit-status");
  const since = $("audit-since").value.trim();
  setStatus(status, "Loading…");
  try {
    const res = await api("/v1/audit" + (since ? `?since=${encodeURIComponent(since)}` : ""));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const recent = [];
    let total = 0;
    let rest = "";
    const take = (line) => {
      if (!line.trim()) return;
      total += 1;
      recent.push(JSON.parse(line));
      if (recent.length > AUDIT_ROWS_SHOWN) recent.shift();
    };
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (rest + value).split("\n");
      rest = lines.pop();
      lines.forEach(take);
    }
    take(rest);
    // Key names beside their ids ("ci (3f2a…)"); a reader that may not list them still sees the ids.
    const names = await apiJson("/v1/audit/actors").then((r) => r.actors, () => ({}));
    const actor = (id) => (id && id in names ? `${names[id] || "unnamed key"} (${id})` : id || "—");
    const rows = recent.reverse().map((e) =>
      h(
        "tr",
        { dataset: { action: e.action } },
        h("td", { text: e.seq }),
        h("td", { text: fmtDate(e.ts) }),
        h("td", { text: e.action }),
        h("td", { text: actor(e.actor) }),
        h("td", {}, h("code", { text: e.target || "—" })),
      ),
    );
    $("audit-rows").replaceChildren(...rows);
    setStatus(status, total > AUDIT_ROWS_SHOWN ? `${total} entries; the newest ${AUDIT_ROWS_SHOWN} are shown.` : `${total} entries.`);
  } catch (e) {
    showError(status, e);
  }
}

async function verifyAudit() {
  const verdict = $("audit-verdict");
  verdict.hidden = false;
  setStatus(verdict, "Verifying the chain…");
  try {
    const v = await apiJson("/v1/audit/verify");
    verdict.dataset.ok = String(v.ok);
    if (v.ok) {
      setStatus(verdict, `The audit chain is intact: ${v.checked} entries checked, head #${v.head_seq}.`, "ok");
    } else {
      const problems = v.problems.slice(0, 5).map((p) => `#${p.seq}: ${p.message || p.kind.replace(/_/g, " ")}`);
      setStatus(verdict, `The audit chain is broken (${v.problems.length} problems): ${problems.join("; ")}.`, "error");
    }
  } catch (e) {
    showError(verdict, e);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------------------------

function dropZone(zone, input, onFiles) {
  input.addEventListener("change", () => {
    onFiles([...input.files]);
    input.value = "";
  });
  zone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    onFiles([...ev.dataTransfer.files]);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) {
      $("signin-error").textContent = FRIENDLY.missing_api_key;
      $("signin-error").hidden = false;
      return;
    }
    await signIn(key);
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  for (const b of document.querySelectorAll("#tabs [data-tab]")) b.addEventListener("click", () => showTab(b.dataset.tab));

  $("consent-expiry").value = defaultExpiry();
  $("consent-expiry").min = new Date().toISOString().slice(0, 10);
  $("consent-form").addEventListener("submit", createConsent);
  $("record-start").addEventListener("click", startConsentRecording);
  $("record-stop").addEventListener("click", stopConsentRecording);
  $("record-retry").addEventListener("click", retryConsentRecording);
  $("sample-record-start").addEventListener("click", startSampleRecording);
  $("sample-record-stop").addEventListener("click", stopSampleRecording);
  dropZone($("dropzone"), $("sample-files"), addSamples);
  $("enroll-submit").addEventListener("click", submitEnrollment);
  $("enroll-again").addEventListener("click", restartEnrollment);
  $("enroll-try").addEventListener("click", () => showTab("playground")); // the new voice comes selected

  $("voices-refresh").addEventListener("click", refreshVoices);

  $("speak-form").addEventListener("submit", speak);
  $("speak-stop").addEventListener("click", () => {
    stopSpeech();
    setStatus($("speak-status"), "Stopped.");
  });
  const speed = $("speak-speed");
  const showSpeed = () => ($("speak-speed-value").textContent = `${Number(speed.value).toFixed(2)}×`);
  speed.addEventListener("input", showSpeed);
  showSpeed();

  dropZone($("detect-drop"), $("detect-file"), (files) => chooseDetectFile(files[0]));
  $("detect-form").addEventListener("submit", detect);

  dropZone($("transcribe-drop"), $("transcribe-file"), (files) => chooseTranscribeFile(files[0]));
  $("transcribe-record-start").addEventListener("click", startTranscribeRecording);
  $("transcribe-record-stop").addEventListener("click", stopTranscribeRecording);
  $("transcribe-form").addEventListener("submit", transcribe);

  $("audit-form").addEventListener("submit", loadAudit);
  $("audit-verify").addEventListener("click", verifyAudit);

  if (state.key) {
    signIn(state.key).then((ok) => {
      if (!ok) signOut($("signin-error").textContent);
    });
  } else {
    $("api-key").focus();
  }
});
