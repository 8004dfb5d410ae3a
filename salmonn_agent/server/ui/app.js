// The salmonn-agent page: streams the microphone to WS /v1/live and shows what the server
// hears (windows), answers (token by token), does (the audit log) and watches for.
// Protocol: salmonn_agent/server/live.py. Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const RETRY_MAX_S = 10;
const PENDING_MAX_FRAMES = 30; // audio kept while (re)connecting: 3 s
const NO_RETRY = new Set([1003, 1008, 1009]); // wrong format, key or limits: retrying cannot help

const live = {
  ws: null, ready: false, retryS: 1, pending: [], heard: 0,
  audio: null, recording: null, clip: null, answer: null, clipAnswer: null,
};

// ---------------------------------------------------------------- connection

function apiKey() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) sessionStorage.setItem("salmonn-key", fromHash);
  return $("key").value || sessionStorage.getItem("salmonn-key") || "";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/live`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onopen = () => {
    const hello = { type: "hello", format: "s16le", sample_rate: 16000 };
    const key = apiKey();
    if (key) hello.api_key = key;
    ws.send(JSON.stringify(hello));
  };
  ws.onmessage = (event) => handle(JSON.parse(event.data));
  ws.onclose = (event) => {
    live.ready = false;
    setStatus(`disconnected (${event.code})`, "down");
    if (NO_RETRY.has(event.code)) return;
    setTimeout(connect, live.retryS * 1000);
    live.retryS = Math.min(live.retryS * 2, RETRY_MAX_S);
  };
}

function send(message) {
  if (live.ready) live.ws.send(JSON.stringify(message));
  else showError("Not connected yet: try again in a moment.");
}

function sendAudio(pcm) {
  if (window.salmonnLog && !live.heard) window.salmonnLog.push({ at: performance.now(), type: "first_frame" });
  if (live.ready) {
    live.ws.send(pcm);
  } else {
    live.pending.push(pcm);
    if (live.pending.length > PENDING_MAX_FRAMES) live.pending.shift();
  }
}

// ---------------------------------------------------------------- server messages

const handlers = {
  ready(m) {
    live.ready = true;
    live.retryS = 1;
    live.heard = 0;
    $("error").hidden = true;
    setStatus(`session ${m.session} · ${m.model}`, "ok");
    $("allowed").textContent = m.allow.length ? `allowed: ${m.allow.join(", ")}` : "no action allowed (--allow)";
    for (const pcm of live.pending.splice(0)) live.ws.send(pcm);
    if (live.clip) live.clip.sent = false; // a new session has no clip yet
    const targets = $("watch-targets").value.trim();
    if (targets) send({ type: "watch", targets: splitTargets(targets) });
  },
  window(m) {
    const tags = m.tags.map((t) => `${t.label} ${t.score.toFixed(2)}`).join(", ");
    const li = item("windows", `<span class="kind ${m.kind}">${m.kind}</span> #${m.index} ` +
      `${m.start.toFixed(2)}–${m.end.toFixed(2)} s <span class="muted">${escape(tags)}</span>`);
    li.className = "window";
    Object.assign(li.dataset, { kind: m.kind, start: m.start, end: m.end, index: m.index });
  },
  answer_start() {
    if (live.answer) live.answer.className = "answer cancelled"; // stopped by a cough: the turn re-runs
    live.answer = item("answers", "");
    live.answer.className = "answer streaming";
  },
  token(m) {
    if (!live.answer) handlers.answer_start();
    live.answer.textContent += m.text;
  },
  turn(m) {
    const li = live.answer || item("answers", "");
    live.answer = null;
    const w = m.window;
    const flags = [m.cancelled && "cancelled (barge-in)", m.retried && "re-run"].filter(Boolean).join(", ");
    const ttft = m.metrics.ttft_ms == null ? "–" : `${Math.round(m.metrics.ttft_ms)} ms`;
    li.className = `answer${m.cancelled ? " cancelled" : ""}`;
    li.dataset.turn = m.turn;
    const acted = m.actions.map((a) => a.tool).join(", ");
    const said = m.answer || (m.error ? `error: ${m.error}` : acted ? `(asked for ${acted})` : "(no words)");
    li.innerHTML = `<b>${escape(said)}</b><br>` +
      `<span class="muted">turn ${m.turn} · ${w.id} ${w.start.toFixed(2)}–${w.end.toFixed(2)} s · ` +
      `first token ${ttft} · turn ${Math.round(m.metrics.turn_ms)} ms${flags ? " · " + flags : ""}</span>`;
  },
  audit(m) {
    const li = item("audit", `<span class="decision ${m.decision}">${m.decision}</span> ` +
      `<b>${escape(m.tool)}</b>(${escape(JSON.stringify(m.args))}) ` +
      `<span class="muted">${escape(m.reason)}${m.window ? " · " + m.window.id : ""}` +
      `${m.result ? " · " + escape(m.result) : ""}${m.error ? " · " + escape(m.error) : ""}</span>`);
    li.className = "audit-row";
    Object.assign(li.dataset, { tool: m.tool, decision: m.decision });
  },
  confirm(m) {
    const li = item("audit", `<b>${escape(m.tool)}</b>(${escape(JSON.stringify(m.args))}) needs your yes ` +
      `<button data-ok="true">Run it</button> <button data-ok="false">Refuse</button> ` +
      `<span class="muted">(refused after ${m.timeout_s} s)</span>`);
    li.className = "confirm-row";
    li.dataset.id = m.id;
    for (const button of li.querySelectorAll("button")) {
      button.onclick = () => {
        send({ type: "confirm", id: m.id, ok: button.dataset.ok === "true" });
        li.remove(); // the audit row with the decision follows
      };
    }
  },
  detection(m) {
    item("detections", `heard <b>${escape(m.target)}</b> in ${m.window.id} at ${m.time.toFixed(1)} s ` +
      `<span class="muted">(${escape(m.answer)}${m.new_event ? "" : ", same event"})</span>`);
  },
  watching(m) {
    $("watching").textContent = m.targets.length ? `watching for: ${m.targets.join("; ")}` : "";
  },
  timer(m) { item("audit", `⏰ timer <b>${escape(m.label)}</b> rang (${m.seconds} s)`); },
  event(m) { item("audit", `event <b>${escape(m.event)}</b> ${escape(m.details || "")}`); },
  onset() {},
  clip_token(m) {
    if (!live.clipAnswer) {
      live.clipAnswer = item("clip-answers", "");
      live.clipAnswer.className = "answer streaming";
    }
    live.clipAnswer.textContent += m.text;
  },
  clip_answer(m) {
    const li = live.clipAnswer || item("clip-answers", "");
    live.clipAnswer = null;
    li.className = "answer clip-answer";
    li.innerHTML = `<span class="muted">${escape(m.question)}</span><br><b>${escape(m.text || "(no words)")}</b>`;
  },
  error(m) { showError(`${m.message} [${m.code}]`); },
};

function handle(message) {
  // Tools that time the page (tools/ui_screenshot.py) set window.salmonnLog = [] to see every message.
  if (window.salmonnLog) window.salmonnLog.push({ at: performance.now(), ...message });
  const handler = handlers[message.type];
  if (handler) handler(message);
}

// ---------------------------------------------------------------- microphone

async function startAudio() {
  if (live.audio) return live.audio;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule("/ui/capture-worklet.js");
  const node = new AudioWorkletNode(context, "pcm16k-capture");
  node.port.onmessage = ({ data }) => {
    if (data.error) return showError(`Microphone: ${data.error}.`);
    showLevel(data.db);
    if (live.recording) live.recording.push(new Int16Array(data.pcm.slice(0)));
    if (live.streaming) {
      sendAudio(data.pcm);
      live.heard += 0.1;
      $("heard").textContent = `${live.heard.toFixed(1)} s sent`;
    }
  };
  context.createMediaStreamSource(stream).connect(node);
  live.audio = { stream, context, node };
  return live.audio;
}

function stopAudio() {
  if (!live.audio) return;
  for (const track of live.audio.stream.getTracks()) track.stop();
  live.audio.context.close();
  live.audio = null;
  showLevel(-100);
}

async function toggleMic() {
  try {
    if (live.streaming) {
      live.streaming = false;
      stopAudio();
      $("mic").textContent = "Start microphone";
      return;
    }
    await startAudio();
    live.streaming = true;
    $("mic").textContent = "Stop microphone";
  } catch (err) {
    showError(`The microphone could not start: ${err.message}. Allow microphone access for this page.`);
  }
}

function showLevel(db) {
  const percent = Math.max(0, Math.min(100, (db + 70) * (100 / 70)));
  $("level").style.width = `${percent}%`;
  $("level-db").textContent = `${db.toFixed(0)} dB`;
}

// ---------------------------------------------------------------- clips and watch

async function recordClip() {
  try {
    await startAudio();
  } catch (err) {
    return showError(`The microphone could not start: ${err.message}.`);
  }
  live.recording = [];
  $("record").disabled = true;
  $("clip-name").textContent = "recording…";
  setTimeout(() => {
    const frames = live.recording;
    live.recording = null;
    if (!live.streaming) stopAudio();
    $("record").disabled = false;
    live.clip = { data: wavBase64(frames), mime: "audio/wav" };
    $("clip-name").textContent = `recorded ${(frames.length / 10).toFixed(1)} s`;
  }, 5000);
}

function wavBase64(frames) {
  const samples = frames.reduce((n, f) => n + f.length, 0);
  const view = new DataView(new ArrayBuffer(44 + samples * 2));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples * 2, true); text(8, "WAVEfmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, 16000, true); view.setUint32(28, 32000, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples * 2, true);
  let at = 44;
  for (const f of frames) for (const s of f) { view.setInt16(at, s, true); at += 2; }
  return bytesBase64(new Uint8Array(view.buffer));
}

function bytesBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

async function pickFile() {
  const file = $("clip-file").files[0];
  if (!file) return;
  live.clip = { data: bytesBase64(new Uint8Array(await file.arrayBuffer())), mime: file.type || "application/octet-stream" };
  $("clip-name").textContent = file.name;
}

function ask(event) {
  event.preventDefault();
  const message = { type: "ask", question: $("question").value };
  if (live.clip && !live.clip.sent) {
    Object.assign(message, { audio: live.clip.data, mime_type: live.clip.mime });
    live.clip.sent = true; // the server keeps the session's last clip for follow-up questions
  }
  send(message);
}

function splitTargets(text) {
  return text.split(/[,;]/).map((t) => t.trim()).filter(Boolean);
}

// ---------------------------------------------------------------- page helpers

function item(listId, html) {
  const li = document.createElement("li");
  li.innerHTML = html;
  const list = $(listId);
  list.appendChild(li);
  list.scrollTop = list.scrollHeight;
  return li;
}

function escape(text) {
  const div = document.createElement("div");
  div.textContent = String(text);
  return div.innerHTML;
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
  if (/api key/i.test(text)) $("key-box").hidden = false;
}

$("mic").onclick = toggleMic;
$("record").onclick = recordClip;
$("clip-file").onchange = pickFile;
$("ask-form").onsubmit = ask;
$("watch-form").onsubmit = (event) => {
  event.preventDefault();
  send({ type: "watch", targets: splitTargets($("watch-targets").value) });
};
$("key").onchange = () => {
  sessionStorage.setItem("salmonn-key", $("key").value);
  if (live.ws.readyState === WebSocket.CLOSED) connect();
  else live.ws.close(); // reconnects with the new key
};
connect();
