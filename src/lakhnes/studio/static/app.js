// LakhNES Studio page: submits jobs to the JSON API, polls them, plays and draws the songs.
"use strict";

const VOICES = ["P1", "P2", "TR", "NO"];
const COLORS = { P1: "#ff5d73", P2: "#ffb547", TR: "#42e2b8", NO: "#a98bff" };
const NAMES = { P1: "Pulse 1", P2: "Pulse 2", TR: "Triangle", NO: "Noise" };
const TITLES = { new: "New song", continue: "Continuation", rhythm: "New melody", accompany: "Accompaniment" };
const $ = (id) => document.getElementById(id);

// 8x8 pixel icons, "#" = lit
const ICONS = {
  note: ["...###..", "...#.##.", "...#..#.", "...#....", ".###....", "####....", "####....", ".##....."],
  ff: ["........", "#...#...", "##..##..", "###.###.", "###.###.", "##..##..", "#...#...", "........"],
  drum: ["#......#", ".#....#.", "..####..", ".#....#.", ".######.", ".#.#.#..", ".######.", "........"],
  duo: [".....##.", "...####.", "...#..#.", "...#..#.", ".###.##.", "####.##.", ".##.....", "........"],
  dice: ["########", "#......#", "#.#..#.#", "#......#", "#..##..#", "#.#..#.#", "#......#", "########"],
  play: ["#.......", "###.....", "#####...", "#######.", "#######.", "#####...", "###.....", "#......."],
  down: ["...##...", "...##...", "...##...", "#######.", ".#####..", "..###...", "...#....", "#######."],
};

function drawIcons(root = document) {
  for (const el of root.querySelectorAll(".ico[data-icon]")) {
    const rows = ICONS[el.dataset.icon];
    let rects = "";
    rows.forEach((row, y) => [...row].forEach((c, x) => {
      if (c === "#") rects += `<rect x="${x}" y="${y}" width="1.02" height="1.02"/>`;
    }));
    el.innerHTML = `<svg viewBox="0 0 8 8" fill="currentColor" shape-rendering="crispEdges" aria-hidden="true">${rects}</svg>`;
  }
}

const state = { info: null, song: null, mute: new Set(), polling: null, cache: new Map(), rollImage: null };

async function api(path, options) {
  const r = await fetch(path, options);
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const d = body && body.detail;
    throw new Error(typeof d === "string" ? d : `${r.status} ${r.statusText}`);
  }
  return body;
}

function showError(msg) {
  const el = $("error");
  el.textContent = msg || "";
  el.hidden = !msg;
}

// ------------------------------------------------------------------ compose form
function mode() { return document.querySelector("input[name=mode]:checked").value; }

function syncMode() {
  const m = mode();
  document.body.dataset.mode = m;
  const verb = { new: "Length", continue: "Add", rhythm: "Use the first", accompany: "Use the first" }[m];
  $("seconds-lbl").firstChild.textContent = `${verb} `;
  showError("");
}

function syncOutputs() {
  $("seconds-out").textContent = `${$("seconds").value} s`;
  $("prime-out").textContent = `${$("prime").value} s`;
  $("max_rest-out").textContent = `${Number($("max_rest").value).toFixed(1)} s`;
  $("temperature-out").textContent = Number($("temperature").value).toFixed(2);
  $("top_k-out").textContent = $("top_k").value === "0" ? "off" : $("top_k").value;
}

function setFile(file) {
  const drop = $("drop");
  if (!file) {
    drop.classList.remove("has-file");
    $("drop-text").innerHTML = "Drop a MIDI, TX1 or VGM file here, or <u>choose one</u>";
    return;
  }
  drop.classList.add("has-file");
  $("drop-text").textContent = `${file.name}  (${Math.max(1, Math.round(file.size / 1024))} KB)`;
  const max = state.info ? state.info.limits.max_upload_bytes : 2 * 1024 * 1024;
  showError(file.size > max ? `${file.name}: file too large (the limit is ${Math.round(max / 1024)} KB)` : "");
  showTracks(null);
  if (file.size <= max) loadTracks(file);
}

const VOICE_CHOICES = ["P1", "P2", "TR", "NO", "-"];

async function loadTracks(file) {
  // a MIDI file's tracks, with the voices the server would give them; the menus' choice goes with the job
  const fd = new FormData();
  fd.append("file", file, file.name);
  try {
    const info = await api("/api/tracks", { method: "POST", body: fd });
    if ($("file").files[0] === file) showTracks(info);
  } catch (e) {
    if ($("file").files[0] === file) showError(e.message);
  }
}

function showTracks(info) {
  const field = $("tracks-field");
  const body = $("tracks").querySelector("tbody");
  body.textContent = "";
  field.hidden = !(info && info.mapped && info.tracks.length);
  if (field.hidden) return;
  for (const t of info.tracks) {
    const tr = document.createElement("tr");
    const cells = [String(t.index), t.name || "(no name)", `${t.notes}${t.drum ? " drum hits" : ""}`,
                   t.drum ? "" : `${t.low}-${t.high}`];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    const sel = document.createElement("select");
    sel.dataset.track = String(t.index);
    sel.setAttribute("aria-label", `voice of track ${t.index}`);
    for (const v of VOICE_CHOICES) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = v === "-" ? "\u2013 (left out)" : v;
      sel.appendChild(o);
    }
    sel.value = t.voice || "-";
    td.appendChild(sel);
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function trackMap() {
  // "0=P1,1=TR,2=-": every track's voice as the menus say (null when the file needs no mapping)
  if ($("tracks-field").hidden) return null;
  return [...$("tracks").querySelectorAll("select")].map((s) => `${s.dataset.track}=${s.value}`).join(",");
}

async function submit(ev) {
  ev.preventDefault();
  showError("");
  const m = mode();
  const fd = new FormData();
  fd.append("mode", m);
  fd.append("seconds", $("seconds").value);
  fd.append("temperature", $("temperature").value);
  fd.append("top_k", $("top_k").value);
  fd.append("num", $("num").value || "1");
  if ($("seed").value !== "") fd.append("seed", $("seed").value);
  if (m === "continue") fd.append("prime_seconds", $("prime").value);
  if (m === "accompany") {
    const keep = [...document.querySelectorAll("input[name=keep]:checked")].map((c) => c.value);
    fd.append("keep", keep.join(","));
  }
  if (m !== "rhythm") {  // all four checked: the default (every voice for a new song, the upload's otherwise)
    const voices = [...document.querySelectorAll("input[name=voices]:checked")].map((c) => c.value);
    if (voices.length < 4) fd.append("voices", voices.join(","));
    fd.append("max_rest", $("max_rest").value);
  }
  const file = $("file").files[0];
  if (m !== "new") {
    if (!file) return showError("This mode needs a MIDI, TX1 or VGM file: drop one above.");
    fd.append("file", file, file.name);
    const map = trackMap();
    if (map) fd.append("map", map);
  }
  $("go").disabled = true;
  try {
    const job = await api("/api/jobs", { method: "POST", body: fd });
    sessionStorage.setItem("lakhnes-job", job.id);
    showProgress(job);
    poll(job.id);
  } catch (e) {
    showError(e.message);
    $("go").disabled = false;
  }
}

function showProgress(job) {
  $("progress").hidden = false;
  $("bar-fill").style.width = `${Math.round(job.progress * 100)}%`;
  const text = job.status === "queued"
    ? `queued${job.position > 1 ? ` (${job.position - 1} ahead)` : ""}`
    : `${job.stage}… ${Math.round(job.progress * 100)}%`;
  $("progress-text").textContent = text;
}

function poll(id) {
  clearTimeout(state.polling);
  const tick = async () => {
    let job;
    try {
      job = await api(`/api/jobs/${id}`);
    } catch (e) {
      showError(e.message);
      $("go").disabled = false;
      sessionStorage.removeItem("lakhnes-job");
      return;
    }
    showProgress(job);
    if (job.status !== "queued" && job.status !== "running") sessionStorage.removeItem("lakhnes-job");
    if (job.status === "done") {
      $("go").disabled = false;
      $("progress-text").textContent = `done: ${job.songs.length} song${job.songs.length > 1 ? "s" : ""}`;
      job.songs.forEach((s) => state.cache.set(s.id, s));
      await refreshHistory();
      if (job.songs.length) loadSong(job.songs[0], true);
    } else if (job.status === "failed") {
      $("go").disabled = false;
      $("progress").hidden = true;
      showError(job.error);
    } else {
      state.polling = setTimeout(tick, 300);
    }
  };
  state.polling = setTimeout(tick, 200);
}

// ------------------------------------------------------------------ player
function describe(song) {
  const p = song.params || {};
  const bits = [`${song.seconds.toFixed(1)} s`, `${song.num_notes} notes`];
  if (p.seed !== null && p.seed !== undefined) bits.push(`seed ${p.seed}`);
  bits.push(`T ${Number(p.temperature).toFixed(2)}`, `top-k ${p.top_k || "off"}`);
  return bits.join(" · ");
}

function songTitle(song) {
  return `${TITLES[song.mode] || song.mode}${song.source ? ` · ${song.source}` : ""}`;
}

// load a song into the player; `at` starts it there (history: compare songs at the same moment)
async function loadSong(song, autoplay, at = 0) {
  if (!song.notes) song = await api(`/api/songs/${song.id}`);
  state.cache.set(song.id, song);
  state.song = song;
  state.mute.clear();
  $("empty").hidden = true;
  $("song").hidden = false;
  $("song-title").textContent = songTitle(song);
  $("song-meta").textContent = `#${song.id} · ${describe(song)}`;
  for (const [key, id] of [["wav", "dl-wav"], ["mid", "dl-mid"], ["tx1", "dl-tx1"], ["vgm", "dl-vgm"], ["ftm", "dl-ftm"]]) {
    $(id).href = `${song.files[key]}?download=1`;
  }
  for (const b of document.querySelectorAll(".mute")) b.setAttribute("aria-pressed", "false");
  $("render-note").textContent = "";
  const hl = song.highlight || {};
  const kept = (hl.voices && hl.voices.length) || hl.span;
  $("legend-kept").hidden = !kept;
  $("legend-kept-text").textContent = hl.span ? "prime (your file)" : `kept from your file: ${(hl.voices || []).join(", ")}`;
  const audio = $("audio");
  audio.src = song.files.wav;
  if (at > 0) {
    audio.addEventListener("loadedmetadata", () => { audio.currentTime = Math.min(at, audio.duration || at); },
      { once: true });
  }
  drawRoll();
  for (const li of document.querySelectorAll("#history li")) li.classList.toggle("active", li.dataset.id === song.id);
  if (autoplay) audio.play().catch(() => {});
}

async function toggleMute(voice, button) {
  if (!state.song) return;
  const next = new Set(state.mute);
  next.has(voice) ? next.delete(voice) : next.add(voice);
  if (next.size === VOICES.length) {
    $("render-note").textContent = "at least one voice must play";
    return;
  }
  const audio = $("audio");
  const at = audio.currentTime;
  const playing = !audio.paused;
  $("render-note").textContent = "rendering…";
  try {
    const r = await api(`/api/songs/${state.song.id}/render`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ mute: [...next] }),
    });
    state.mute = next;
    button.setAttribute("aria-pressed", String(next.has(voice)));
    audio.src = r.url;
    audio.addEventListener("loadedmetadata", () => {
      audio.currentTime = Math.min(at, audio.duration || at);
      if (playing) audio.play().catch(() => {});
    }, { once: true });
    $("render-note").textContent = next.size ? `muted: ${[...next].join(", ")}` : "";
    drawRoll();
  } catch (e) {
    $("render-note").textContent = e.message;
  }
}

// ------------------------------------------------------------------ piano roll
const GUTTER = 86;
const AXIS = 22;

function hatch(ctx) {
  const c = document.createElement("canvas");
  c.width = c.height = 8;
  const g = c.getContext("2d");
  g.strokeStyle = "rgba(207, 208, 255, 0.16)";
  g.lineWidth = 2;
  g.beginPath();
  g.moveTo(0, 8); g.lineTo(8, 0); g.moveTo(-2, 2); g.lineTo(2, -2); g.moveTo(6, 10); g.lineTo(10, 6);
  g.stroke();
  return ctx.createPattern(c, "repeat");
}

function lanePitches(v, notes) {
  if (v === "NO") return [0, 17];
  const p = notes.pitch;
  if (!p.length) return [57, 72];
  let lo = Math.min(...p) - 2, hi = Math.max(...p) + 2;
  if (hi - lo < 14) { const mid = (hi + lo) / 2; lo = Math.floor(mid - 7); hi = Math.ceil(mid + 7); }
  return [lo, hi];
}

// draw the four lanes of `song` into a canvas of CSS size w x h; mini = history thumbnail
function paintRoll(canvas, song, { mini = false, mute = new Set() } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  const left = mini ? 0 : GUTTER, bottom = mini ? 0 : AXIS, right = mini ? 0 : 10;
  const total = Math.max(song.notes.seconds, 0.001);
  const x = (t) => left + (t / total) * (w - left - right);
  const gap = mini ? 1 : 6;
  const laneH = (h - bottom - gap * 3 - (mini ? 0 : 8)) / 4;
  const top0 = mini ? 0 : 4;
  const hl = song.highlight || {};
  const kept = new Set(hl.voices || []);
  const span = hl.span;
  const pattern = mini ? null : hatch(ctx);
  ctx.clearRect(0, 0, w, h);

  if (!mini) {  // time grid
    const step = total > 60 ? 10 : total > 20 ? 5 : total > 6 ? 1 : 0.5;
    ctx.font = "10.5px 'DejaVu Sans Mono', monospace";
    ctx.textAlign = "center";
    for (let t = 0; t <= total + 1e-6; t += step) {
      const gx = Math.round(x(t)) + 0.5;
      ctx.strokeStyle = "rgba(155, 151, 201, 0.12)";
      ctx.beginPath(); ctx.moveTo(gx, top0); ctx.lineTo(gx, h - bottom); ctx.stroke();
      ctx.fillStyle = "#7e7ab0";
      ctx.fillText(`${Number.isInteger(t) ? t : t.toFixed(1)}s`, gx, h - 6);
    }
  }

  VOICES.forEach((v, i) => {
    const top = top0 + i * (laneH + gap);
    const n = song.notes.voices[v];
    const color = COLORS[v];
    const keptLane = kept.has(v);
    ctx.globalAlpha = mute.has(v) ? 0.22 : 1;
    ctx.fillStyle = color + (mini ? "16" : "1a");
    ctx.fillRect(left, top, w - left - right, laneH);
    if (pattern && keptLane) { ctx.fillStyle = pattern; ctx.fillRect(left, top, w - left - right, laneH); }
    if (pattern && span) { ctx.fillStyle = pattern; ctx.fillRect(x(span[0]), top, x(span[1]) - x(span[0]), laneH); }
    const [lo, hi] = lanePitches(v, n);
    const rowH = laneH / (hi - lo + 1);
    const noteH = Math.max(mini ? 1.5 : 2.5, Math.min(rowH * 1.6, mini ? 3 : 7));
    for (let k = 0; k < n.start.length; k++) {
      const s = n.start[k], e = n.end[k];
      const y = top + (hi - n.pitch[k]) * rowH + rowH / 2 - noteH / 2;
      const x0 = x(s), nw = Math.max(1.5, x(e) - x0 - (mini ? 0 : 0.6));
      const fromFile = keptLane || (span && s < span[1]);
      if (fromFile && !mini) {  // from the upload: dimmer, outlined
        ctx.fillStyle = color + "70";
        ctx.fillRect(x0, y, nw, noteH);
        if (nw > 3 && noteH > 3) {
          ctx.strokeStyle = color;
          ctx.lineWidth = 1;
          ctx.strokeRect(x0 + 0.5, y + 0.5, nw - 1, noteH - 1);
        }
      } else {
        ctx.fillStyle = color;
        ctx.fillRect(x0, y, nw, noteH);
        if (!mini && noteH > 3) { ctx.fillStyle = "rgba(255,255,255,0.35)"; ctx.fillRect(x0, y, nw, 1); }
      }
    }
    if (!mini) {  // lane label
      ctx.globalAlpha = mute.has(v) ? 0.35 : 1;
      ctx.fillStyle = color;
      ctx.fillRect(0, top, 4, laneH);
      ctx.textAlign = "left";
      ctx.font = "bold 13px 'DejaVu Sans Mono', monospace";
      ctx.fillText(v, 12, top + laneH / 2 - 2);
      ctx.font = "10.5px 'DejaVu Sans', sans-serif";
      ctx.fillStyle = "#9b97c9";
      ctx.fillText(mute.has(v) ? "muted" : keptLane ? "kept" : NAMES[v], 12, top + laneH / 2 + 12);
    }
    ctx.globalAlpha = 1;
  });
  if (span && !mini) {  // prime boundary
    const bx = Math.round(x(span[1])) + 0.5;
    ctx.strokeStyle = "#ffd23f";
    ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(bx, top0); ctx.lineTo(bx, h - bottom); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#ffd23f";
    ctx.font = "10.5px 'DejaVu Sans Mono', monospace";
    ctx.textAlign = "right";
    ctx.fillText("prime ▸", bx - 4, top0 + 12);
  }
  return { x, left, right, total };
}

function drawRoll() {
  if (!state.song) return;
  const canvas = $("roll");
  state.geometry = paintRoll(canvas, state.song, { mute: state.mute });
  state.rollImage = document.createElement("canvas");
  state.rollImage.width = canvas.width;
  state.rollImage.height = canvas.height;
  state.rollImage.getContext("2d").drawImage(canvas, 0, 0);
  drawPlayhead();
}

function drawPlayhead() {
  const canvas = $("roll");
  if (!state.rollImage || !state.geometry) return;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(state.rollImage, 0, 0);
  const dpr = window.devicePixelRatio || 1;
  ctx.scale(dpr, dpr);
  const t = $("audio").currentTime || 0;
  if (t > 0) {
    const px = state.geometry.x(Math.min(t, state.geometry.total));
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(px - 1, 0, 2, canvas.clientHeight - AXIS);
    ctx.fillStyle = "#ffd23f";
    ctx.fillRect(px - 4, 0, 8, 4);
  }
}

function animate() {
  if (!$("audio").paused) drawPlayhead();
  requestAnimationFrame(animate);
}

function seek(ev) {
  if (!state.geometry) return;
  const r = $("roll").getBoundingClientRect();
  const { left, right, total } = state.geometry;
  const t = ((ev.clientX - r.left - left) / (r.width - left - right)) * total;
  if (t < 0) return;
  const audio = $("audio");
  audio.currentTime = Math.min(t, total);
  drawPlayhead();
  audio.play().catch(() => {});
}

// ------------------------------------------------------------------ history
async function refreshHistory() {
  let songs;
  try { songs = await api("/api/songs"); } catch (e) { return; }
  const list = $("history");
  list.innerHTML = "";
  $("history-empty").hidden = songs.length > 0;
  $("history-count").textContent = songs.length ? `(${songs.length})` : "";
  for (const s of songs) {
    const li = document.createElement("li");
    li.dataset.id = s.id;
    li.classList.toggle("active", !!state.song && state.song.id === s.id);
    const when = new Date(s.created * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    li.innerHTML = `<b></b><button type="button" class="play" title="play"><i class="ico" data-icon="play"></i></button>
      <small></small><canvas></canvas>`;
    li.querySelector("b").textContent = songTitle(s);
    li.querySelector("small").textContent = `${when} · ${describe(s)}`;
    li.title = "play (while a song plays: switch at the same moment, to compare)";
    li.addEventListener("click", () => {
      const audio = $("audio");
      const at = !audio.paused && state.song && state.song.id !== s.id ? audio.currentTime : 0;
      loadSong(state.cache.get(s.id) || s, true, at);
    });
    list.appendChild(li);
    thumbnail(li.querySelector("canvas"), s.id);
  }
  drawIcons(list);
}

async function thumbnail(canvas, id) {
  let song = state.cache.get(id);
  if (!song || !song.notes) {
    try { song = await api(`/api/songs/${id}`); } catch (e) { return; }
    state.cache.set(id, song);
  }
  paintRoll(canvas, song, { mini: true });
}

// ------------------------------------------------------------------ start
async function init() {
  drawIcons();
  for (const r of document.querySelectorAll("input[name=mode]")) r.addEventListener("change", syncMode);
  for (const id of ["seconds", "prime", "temperature", "top_k", "max_rest"]) $(id).addEventListener("input", syncOutputs);
  $("compose").addEventListener("submit", submit);
  $("dice").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 100000); });
  $("file").addEventListener("change", () => setFile($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) { $("file").files = e.dataTransfer.files; setFile(e.dataTransfer.files[0]); }
  });
  for (const b of document.querySelectorAll(".mute")) b.addEventListener("click", () => toggleMute(b.dataset.voice, b));
  $("roll").addEventListener("click", seek);
  $("audio").addEventListener("seeked", drawPlayhead);
  window.addEventListener("resize", drawRoll);
  syncMode();
  syncOutputs();
  requestAnimationFrame(animate);
  try {
    state.info = await api("/api/info");
    $("model").textContent = state.info.model;
    const lim = state.info.limits;
    $("seconds").max = lim.max_seconds;
    $("prime").max = Math.min(30, lim.max_seconds);
    $("num").max = lim.max_num;
    $("max-kb").textContent = Math.round(lim.max_upload_bytes / 1024);
  } catch (e) {
    showError(`cannot reach the studio server: ${e.message}`);
  }
  await refreshHistory();
  const pending = sessionStorage.getItem("lakhnes-job");  // a job still running when the page reloaded
  if (pending) { $("go").disabled = true; poll(pending); }
}

function spaceToPlay(ev) {
  if (ev.code !== "Space" || !state.song || ev.target.closest("input, button, a, audio, select, textarea")) return;
  ev.preventDefault();
  const audio = $("audio");
  audio.paused ? audio.play().catch(() => {}) : audio.pause();
}

document.addEventListener("keydown", spaceToPlay);
init();
