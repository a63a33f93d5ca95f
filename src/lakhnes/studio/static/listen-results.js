// The results page: tables and the figure, recomputed from the answers on every load (needs ?key=).
"use strict";

const $ = (sel) => document.querySelector(sel);
const key = new URLSearchParams(location.search).get("key") || "";
const q = `?key=${encodeURIComponent(key)}`;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function table(head, rows) {
  const t = el("table");
  const tr = el("tr");
  head.forEach((h) => tr.append(el("th", h)));
  t.append(tr);
  for (const r of rows) {
    const row = el("tr");
    r.forEach((c, i) => row.append(el("td", c, i > 0 ? "num" : "")));
    t.append(row);
  }
  return t;
}

const f3 = (x) => (x === null || x === undefined ? "—" : x.toFixed(3));
const fp = (p) => (p < 0.001 ? "< 0.001" : p.toFixed(3));

(async () => {
  const r = await fetch(`/listen/api/results${q}`);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    $("#error").hidden = false;
    $("#error").textContent = data.detail || `${r.status} ${r.statusText}`;
    $("#csv").hidden = true;
    return;
  }
  $("#csv").href = `/listen/api/answers.csv${q}`;
  $("#figure").src = `/listen/api/results.png${q}`;
  $("#figure").hidden = false;
  $("#stamp").textContent = `· ${new Date().toLocaleString()}`;
  const box = $("#tests");
  for (const [test, res] of Object.entries(data)) {
    box.append(el("h3", `${res.label}: ${res.measure}`));
    box.append(el("p", `${res.listeners} listener${res.listeners === 1 ? "" : "s"}: ${res.qualified} counted, ${res.failed_controls} failed a control, ` +
      `${res.too_few_batches} finished fewer than ${res.min_batches} batch${res.min_batches === 1 ? "" : "es"}. ` +
      `${res.answers} answers, ${res.counted} counted.`, "summary"));
    const turing = test === "turing";
    const rows = Object.entries(res.systems).map(([name, s]) => {
      const row = [name, String(s.n), s.p === null ? "—" : `${f3(s.p)} ± ${f3(s.se)}`];
      if (turing) row.push(s.vs_chance ? fp(s.vs_chance.p_value) : "—");
      return row;
    });
    box.append(table(["system", "answers", turing ? "accuracy ± s.e." : "share won ± s.e.",
      ...(turing ? ["p vs chance"] : [])], rows));
    if (res.differences.length) {
      const t = table(["systems", "difference", "z", "p", "p < 0.05"], res.differences.map((d) => [
        `${d.a} vs ${d.b}`, (d.diff >= 0 ? "+" : "") + d.diff.toFixed(3), d.z === null ? "—" : d.z.toFixed(2),
        fp(d.p_value), d.significant ? "yes" : "no"]));
      t.querySelectorAll("tr").forEach((tr, i) => { if (i && res.differences[i - 1].significant) tr.classList.add("sig"); });
      box.append(t);
    }
  }
})();
