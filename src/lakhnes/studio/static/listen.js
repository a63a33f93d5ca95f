// The listening study page: pick a test, hear pairs, answer; every answer is saved before the next pair.
// The page never learns which clip is which: it gets two opaque audio URLs per pair and sends back "a" or "b".
"use strict";

const $ = (sel) => document.querySelector(sel);
const API = "/listen/api";
const KEY = "lakhnes-listener";
const state = { info: null, listener: null, batch: null, pair: null, heard: { a: false, b: false } };

class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function call(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch(API + path, opts);  // a network failure throws a TypeError
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new HttpError(r.status, data.detail || `${r.status} ${r.statusText}`);
  return data;
}

// Keep trying while the server is away (stopped, restarting); HTTP errors below 500 are final.
async function persist(path, body) {
  for (let attempt = 0; ; attempt++) {
    try {
      const out = await call(path, body);
      banner(null);
      return out;
    } catch (e) {
      if (e instanceof HttpError && e.status < 500) { banner(null); throw e; }
      banner("Not saved yet: the server cannot be reached. Retrying…");
      await new Promise((ok) => setTimeout(ok, Math.min(4000, 500 + 500 * attempt)));
    }
  }
}

function banner(text) {
  $("#banner").hidden = !text;
  $("#banner").textContent = text || "";
}

function show(id) {
  for (const s of ["intro", "pair", "done"]) $("#" + s).hidden = s !== id;
}

// ------------------------------------------------------------------ listener and tests
async function listener() {
  const saved = localStorage.getItem(KEY);
  if (saved) {
    try { return await persist(`/listeners/${saved}`); } catch (e) { /* unknown here: start afresh */ }
  }
  const made = await persist("/listeners", {});
  localStorage.setItem(KEY, made.id);
  return persist(`/listeners/${made.id}`);
}

function renderTests(me) {
  const box = $("#tests");
  box.textContent = "";
  for (const t of state.info.tests) {
    const mine = me.tests[t.id];
    const b = document.createElement("button");
    b.type = "button";
    b.className = "test-card";
    b.dataset.test = t.id;
    const line = (cls, text) => { const e = document.createElement(cls[0]); e.className = cls[1] || ""; e.textContent = text; b.append(e); };
    line(["b"], t.label);
    line(["span", "q"], t.question);
    line(["small"], `${t.seconds} s clips · ${mine.batches_done} batch${mine.batches_done === 1 ? "" : "es"} done` +
      (t.min_batches > 1 ? ` · answers count after ${t.min_batches}` : ""));
    if (mine.open) line(["small", "resume"], `continue batch ${mine.open.number}: ${mine.open.answered} of ${state.info.pairs} answered`);
    b.addEventListener("click", () => start(t.id));
    box.append(b);
  }
}

async function home() {
  const me = await persist(`/listeners/${state.listener}`);
  renderTests(me);
  show("intro");
}

// ------------------------------------------------------------------ a batch
async function start(test) {
  try {
    state.batch = await persist(`/listeners/${state.listener}/batches`, { test });
  } catch (e) {
    $("#intro-error").hidden = false;
    $("#intro-error").textContent = e.message;
    return;
  }
  showPair(state.batch.next);
}

function stopAll() {
  for (const side of ["a", "b"]) {
    const au = $(`#clip-${side} audio`);
    au.pause();
    $(`#clip-${side}`).classList.remove("playing");
  }
}

function showPair(k) {
  const b = state.batch;
  stopAll();
  state.pair = k;
  state.heard = { a: false, b: false };
  const p = b.pairs[k];
  const test = state.info.tests.find((t) => t.id === b.test);
  $("#pair-title").textContent = `${test.label} · batch ${b.number}`;
  const answered = b.pairs.filter((q) => q.answered).length;
  $("#pair-count").textContent = `pair ${answered + 1} of ${b.pairs.length}`;
  $("#batch-fill").style.width = `${(100 * answered) / b.pairs.length}%`;
  $("#question").textContent = b.question;
  for (const side of ["a", "b"]) {
    const clip = $(`#clip-${side}`);
    clip.classList.remove("heard", "playing");
    clip.querySelector(".meter i").style.width = "0";
    clip.querySelector(".state").textContent = "not played yet";
    clip.querySelector("audio").src = p[side];
  }
  document.querySelectorAll(".choice").forEach((c) => {
    c.disabled = true;
    c.textContent = b.test === "turing" ? `${c.dataset.choice.toUpperCase()} was written by a human`
      : `I prefer ${c.dataset.choice.toUpperCase()}`;
  });
  $("#hint").textContent = "Play both clips to answer.";
  show("pair");
}

function heard(side) {
  state.heard[side] = true;
  $(`#clip-${side}`).classList.add("heard");
  $(`#clip-${side} .state`).textContent = "played";
  if (state.heard.a && state.heard.b) {
    document.querySelectorAll(".choice").forEach((c) => { c.disabled = false; });
    $("#hint").textContent = "Replay them as often as you like.";
  }
}

async function answer(choice) {
  const b = state.batch;
  document.querySelectorAll(".choice").forEach((c) => { c.disabled = true; });
  stopAll();
  let out;
  try {
    out = await persist("/answers", { listener: state.listener, batch: b.id, pair: state.pair, choice });
  } catch (e) {
    $("#hint").textContent = e.message;
    if (e.status === 404) setTimeout(home, 1500);  // the batch is gone: back to the tests
    if (e.status === 409) setTimeout(() => start(b.test), 1500);  // answered elsewhere (another tab)
    return;
  }
  b.pairs[state.pair].answered = true;
  if (out.finished) {
    const test = state.info.tests.find((t) => t.id === b.test);
    const left = Math.max(0, test.min_batches - out.batches_done);
    $("#done-text").textContent = `Thank you: batch ${b.number} is saved (${out.batches_done} done). ` +
      (left ? `Your answers count once you have done ${test.min_batches} batches: ${left} to go.` : "Another batch helps even more.");
    show("done");
  } else {
    showPair(out.next);
  }
}

// ------------------------------------------------------------------ wiring
for (const side of ["a", "b"]) {
  const clip = $(`#clip-${side}`);
  const au = clip.querySelector("audio");
  clip.querySelector(".play").addEventListener("click", () => {
    if (!au.paused) { au.pause(); return; }
    stopAll();
    au.currentTime = 0;
    au.play().catch(() => { $("#hint").textContent = "This browser would not play the clip; try again."; });
  });
  au.addEventListener("playing", () => { clip.classList.add("playing"); heard(side); });
  au.addEventListener("pause", () => clip.classList.remove("playing"));
  au.addEventListener("ended", () => clip.classList.remove("playing"));
  au.addEventListener("timeupdate", () => {
    if (au.duration) clip.querySelector(".meter i").style.width = `${(100 * au.currentTime) / au.duration}%`;
  });
}
document.querySelectorAll(".choice").forEach((c) => c.addEventListener("click", () => answer(c.dataset.choice)));
$("#again").addEventListener("click", () => start(state.batch.test));
$("#back").addEventListener("click", home);

(async () => {
  state.info = await persist("/info");
  $("#n-pairs").textContent = state.info.pairs;
  const me = await listener();
  state.listener = me.id;
  $("#who").textContent = `listener ${me.id.slice(0, 6)}`;
  renderTests(me);
  show("intro");
})();
