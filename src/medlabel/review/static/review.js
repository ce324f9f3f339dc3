// medlabel review UI: queue, slice viewer with window/level, overlays, keyboard review,
// brush and eraser corrections. Plain JavaScript, no framework; slices come from the server.
"use strict";

const state = {
  queue: [], pos: -1, item: null, result: 0, slice: 0, level: 40, width: 400,
  zoom: 1, panX: 0, panY: 0, overlay: true, opacity: 0.45, tool: "view", brushClass: 1, brush: 6,
  labels: null, labelsDirty: false, colours: [], role: "viewer",
  img: null, over: null,
};
const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");

async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options });
  if (r.status === 401) { window.location = "/login"; throw new Error("signed out"); }
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return r.headers.get("content-type")?.includes("json") ? r.json() : r;
}

function say(text) { $("message").textContent = text; }
function fmt(v) { return v === null || v === undefined ? "n/a" : Number(v).toFixed(3); }
function current() { return state.item ? state.item.results[state.result] : null; }

async function refreshProgress() {
  const p = await api("/api/progress");
  const agree = p.agreement === null ? "n/a" : (100 * p.agreement).toFixed(0) + "%";
  $("progress").textContent =
    `reviewed ${p.total - p.pending}/${p.total} (accepted ${p.accepted}, corrected ` +
    `${p.corrected}, rejected ${p.rejected}); agreement with the model ${agree}`;
}

async function loadQueue(keepId) {
  const q = new URLSearchParams({
    strategy: $("strategy").value, status: $("status").value,
    model: $("model").value, label: $("label").value,
  });
  state.queue = await api("/api/queue?" + q);
  const list = $("queue");
  list.innerHTML = "";
  state.queue.forEach((r, i) => {
    const li = document.createElement("li");
    li.dataset.index = i;
    li.id = "q-" + i;
    li.innerHTML = `<img alt="" src="/api/thumbs/${encodeURIComponent(r.item)}.png">
      <div class="meta"><div>${escapeHtml(r.source)}</div>
      <div>${escapeHtml(r.model)}: <b>${escapeHtml(r.label || "(nothing)")}</b></div>
      <div class="muted">u=${fmt(r.uncertainty)} <span class="badge ${r.status}">${r.status}</span>
      </div></div>`;
    li.onclick = () => select(i);
    list.appendChild(li);
  });
  let start = 0;
  if (keepId) start = Math.max(0, state.queue.findIndex((r) => r.item === keepId));
  if (state.queue.length) await select(Math.min(start, state.queue.length - 1));
  else { state.item = null; draw(); say("Nothing left in this queue."); }
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" }[c]));
}

async function select(i) {
  if (i < 0 || i >= state.queue.length) return;
  if (state.labelsDirty && !confirm("Discard unsaved mask edits?")) return;
  state.pos = i;
  document.querySelectorAll("#queue li").forEach((li) =>
    li.classList.toggle("current", Number(li.dataset.index) === i));
  $("q-" + i)?.scrollIntoView({ block: "nearest" });
  const row = state.queue[i];
  state.item = await api("/api/items/" + encodeURIComponent(row.item));
  state.colours = state.item.colours || [];
  state.result = Math.max(0, state.item.results.findIndex((r) => r.model === row.model));
  state.slice = Math.floor(state.item.slices / 2);
  state.level = state.item.window.level;
  state.width = state.item.window.width;
  state.zoom = 1; state.panX = 0; state.panY = 0;
  state.labels = null;
  state.labelsDirty = false;
  renderPanel();
  await loadSlice();
  // a counter that scripts (and tests) can wait on: the item is on screen and ready for keys
  state.loads = (state.loads || 0) + 1;
  $("viewer").dataset.loads = String(state.loads);
}

function renderPanel() {
  const item = state.item;
  $("source").textContent = item.source;
  const box = $("results");
  box.innerHTML = "";
  item.results.forEach((r, k) => {
    const div = document.createElement("div");
    div.className = "result" + (k === state.result ? " current" : "");
    const ann = r.annotation ? `<div>human: <b>${escapeHtml(r.annotation.label)}</b>
      (v${r.annotation.version}, ${escapeHtml(r.annotation.author)})</div>` : "";
    let choices = "";
    if (r.task === "classification") {
      choices = r.classes.map((c, j) =>
        `<button data-label="${escapeHtml(c)}" title="key ${j + 1}">${j + 1}: ${escapeHtml(c)}` +
        ` (${fmt(r.probs[c])})</button>`).join("");
    }
    div.innerHTML = `<div><b>${escapeHtml(r.model)}</b> <span class="badge ${r.status}">
      ${r.status}</span></div><div>label: <b>${escapeHtml(r.label || "(nothing)")}</b></div>
      <div class="muted">confidence ${fmt(r.confidence)}, uncertainty ${fmt(r.uncertainty)}</div>
      ${r.ood ? '<div class="ood"><b>out of distribution</b></div>' : ""}
      ${(r.notes || []).map((n) => `<div class="muted note">${escapeHtml(n)}</div>`).join("")}
      ${ann}<div>${choices}</div>
      <button class="accept">Accept (A)</button><button class="reject">Reject (R)</button>`;
    div.onclick = (ev) => {
      if (ev.target.tagName === "BUTTON") return;
      state.result = k; state.labels = null; renderPanel(); loadSlice();
    };
    div.querySelector(".accept").onclick = () => { state.result = k; decide("accepted"); };
    div.querySelector(".reject").onclick = () => { state.result = k; decide("rejected"); };
    div.querySelectorAll("button[data-label]").forEach((b) => {
      b.onclick = () => { state.result = k; decide("corrected", b.dataset.label); };
    });
    box.appendChild(div);
  });
  renderLegend();
  renderTraining();
}

function renderTraining() {
  const r = current();
  const link = $("export");
  if (!r) { link.removeAttribute("href"); return; }
  link.href = `/api/export/${encodeURIComponent(r.model)}.csv`;
  $("retrain").textContent = `Retrain ${r.model}`;
}

async function retrain() {
  const r = current();
  if (!r) return;
  try {
    const res = await api(`/train/${encodeURIComponent(r.model)}`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ budget_minutes: Number($("minutes").value) || 10 }),
    });
    $("trainstatus").textContent = `training ${res.id} ...`;
    pollTraining();
  } catch (e) { $("trainstatus").textContent = String(e.message || e); }
}

async function pollTraining() {
  const s = await api("/train/");
  const text = s.status === "RUNNING" ? `training ${s.model} ...` :
    s.status === "NONE" ? "" : `last training of ${s.model}: ${s.status}` +
    (s.status === "DONE" ? ` (${s.out})` : "");
  $("trainstatus").textContent = text;
  if (s.status === "RUNNING") setTimeout(pollTraining, 3000);
}

function renderLegend() {
  const r = current();
  const legend = $("legend");
  legend.innerHTML = "";
  if (!r || r.task !== "segmentation") return;
  Object.entries(r.classes).forEach(([value, name]) => {
    const c = state.colours[(Number(value) - 1) % state.colours.length] || [255, 0, 0];
    const span = document.createElement("span");
    const mark = Number(value) === state.brushClass && state.tool === "brush" ? " *" : "";
    span.innerHTML = `<i style="background:rgb(${c.join(",")})"></i>${value}: ${escapeHtml(name)}${mark}`;
    legend.appendChild(span);
  });
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const im = new Image();
    im.onload = () => resolve(im);
    im.onerror = () => reject(new Error("cannot load " + url));
    im.src = url;
  });
}

async function loadSlice() {
  if (!state.item) return;
  const id = encodeURIComponent(state.item.id);
  const q = `level=${state.level}&width=${state.width}`;
  state.img = await loadImage(`/api/items/${id}/slice/${state.slice}.png?${q}`);
  const r = current();
  state.over = null;
  if (r && r.task === "segmentation" && r.mask && !state.labelsDirty) {
    state.over = await loadImage(
      `/api/items/${id}/overlay/${encodeURIComponent(r.model)}/${state.slice}.png?v=${r.annotation ? r.annotation.version : 0}`);
    state.labels = null;
  }
  $("sliceinfo").textContent = `slice ${state.slice + 1}/${state.item.slices}  W ${Math.round(state.width)} L ${Math.round(state.level)}`;
  draw();
}

function geometry() {
  const im = state.img;
  const w = im.width, h = im.height * state.item.aspect;
  const fit = Math.min(canvas.width / w, canvas.height / h) * state.zoom;
  return {
    x: (canvas.width - w * fit) / 2 + state.panX, y: (canvas.height - h * fit) / 2 + state.panY,
    sx: fit, sy: fit * state.item.aspect,
  };
}

function draw() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!state.item || !state.img) return;
  const g = geometry();
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(state.img, g.x, g.y, state.img.width * g.sx, state.img.height * g.sy);
  if (!state.overlay) return;
  ctx.globalAlpha = state.opacity;
  ctx.imageSmoothingEnabled = false;
  if (state.labels) ctx.drawImage(labelsCanvas(), g.x, g.y, state.img.width * g.sx, state.img.height * g.sy);
  else if (state.over) ctx.drawImage(state.over, g.x, g.y, state.img.width * g.sx, state.img.height * g.sy);
  ctx.globalAlpha = 1;
}

function labelsCanvas() {
  const L = state.labels;
  const off = document.createElement("canvas");
  off.width = L.width; off.height = L.height;
  const c = off.getContext("2d");
  const data = c.createImageData(L.width, L.height);
  for (let i = 0; i < L.data.length; i++) {
    const v = L.data[i];
    if (!v) continue;
    const col = state.colours[(v - 1) % state.colours.length] || [255, 0, 0];
    data.data.set([col[0], col[1], col[2], 255], i * 4);
  }
  c.putImageData(data, 0, 0);
  return off;
}

async function ensureLabels() {
  const r = current();
  if (!r || r.task !== "segmentation" || !r.mask) return false;
  if (state.labels) return true;
  const id = encodeURIComponent(state.item.id);
  const res = await api(`/api/items/${id}/labels/${encodeURIComponent(r.model)}/${state.slice}`);
  const data = new Uint8Array(res.width * res.height);
  let p = 0;
  for (let k = 0; k < res.rle.length; k += 2) {
    data.fill(res.rle[k], p, p + res.rle[k + 1]);
    p += res.rle[k + 1];
  }
  state.labels = { width: res.width, height: res.height, data };
  return true;
}

function paint(ev) {
  const L = state.labels;
  if (!L) return;
  const rect = canvas.getBoundingClientRect();
  const g = geometry();
  const px = (ev.clientX - rect.left - g.x) / g.sx;
  const py = (ev.clientY - rect.top - g.y) / g.sy;
  const value = state.tool === "eraser" ? 0 : state.brushClass;
  const r = state.brush;
  for (let y = Math.floor(py - r); y <= py + r; y++) {
    for (let x = Math.floor(px - r); x <= px + r; x++) {
      if (x < 0 || y < 0 || x >= L.width || y >= L.height) continue;
      if ((x - px) ** 2 + (y - py) ** 2 <= r * r) L.data[y * L.width + x] = value;
    }
  }
  state.labelsDirty = true;
  draw();
}

async function saveMask() {
  const r = current();
  if (!state.labels || !state.labelsDirty) { say("No mask edits to save."); return; }
  const L = state.labels;
  const rle = [];
  let run = 1;
  for (let i = 1; i <= L.data.length; i++) {
    if (i < L.data.length && L.data[i] === L.data[i - 1]) { run++; continue; }
    rle.push(L.data[i - 1], run);
    run = 1;
  }
  const id = encodeURIComponent(state.item.id);
  const res = await api(`/api/items/${id}/mask/${encodeURIComponent(r.model)}`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      index: state.slice, width: L.width, height: L.height, rle,
      base: r.annotation ? r.annotation.version : 0,
    }),
  });
  state.labelsDirty = false;
  say(`Saved mask version ${res.version}.`);
  const badge = document.querySelector(`#q-${state.pos} .badge`);
  if (badge) { badge.className = "badge corrected"; badge.textContent = "corrected"; }
  const keep = state.item.id;
  state.item = await api("/api/items/" + id);
  state.colours = state.item.colours || state.colours;
  renderPanel();
  state.labels = null;
  await loadSlice();
  await refreshProgress();
  return keep;
}

async function decide(status, label) {
  const r = current();
  if (!r) return;
  if (state.role === "viewer") { say("Viewers cannot change annotations."); return; }
  const id = encodeURIComponent(state.item.id);
  const res = await api(`/api/items/${id}/review`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: r.model, status, label: label ?? null }),
  });
  status = res.status || status;
  say(`${r.model}: ${status}${label ? " as " + label : ""}`);
  await refreshProgress();
  const pos = state.pos;
  const item = state.item.id;
  const row = state.queue[pos];
  row.status = status;
  if ($("status").value === "pending") {
    // the decided result leaves the pending queue: stay at the same place in the list
    state.queue.splice(pos, 1);
    document.getElementById("q-" + pos)?.remove();
    await loadQueue(state.queue[pos] ? state.queue[pos].item : item);
  } else {
    await select(pos);
  }
}

function setTool(tool) {
  state.tool = tool;
  $("toolname").textContent = "tool: " + tool + (tool === "view" ? "" : ` (size ${state.brush})`);
  renderLegend();
}

let drag = null;
canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
canvas.addEventListener("mousedown", async (ev) => {
  canvas.focus();
  // pan: right or middle button, or shift with the left one (any tool)
  if (ev.button === 1 || ev.button === 2 || ev.shiftKey) {
    ev.preventDefault();
    drag = { pan: true, x: ev.clientX, y: ev.clientY, px: state.panX, py: state.panY };
    return;
  }
  if (state.tool !== "view" && await ensureLabels()) { drag = { paint: true }; paint(ev); return; }
  drag = { x: ev.clientX, y: ev.clientY, level: state.level, width: state.width };
});
window.addEventListener("mousemove", (ev) => {
  if (!drag) return;
  if (drag.paint) { paint(ev); return; }
  if (drag.pan) {
    state.panX = drag.px + ev.clientX - drag.x;
    state.panY = drag.py + ev.clientY - drag.y;
    draw();
    return;
  }
  state.width = Math.max(1, drag.width + (ev.clientX - drag.x) * state.width / 200);
  state.level = drag.level + (ev.clientY - drag.y) * state.width / 200;
});
window.addEventListener("mouseup", () => {
  if (drag && !drag.paint && !drag.pan) loadSlice();
  drag = null;
});

function zoomAt(factor, cx, cy) {
  // zoom about canvas point (cx, cy): the image point under it stays put
  const before = state.zoom;
  state.zoom = Math.min(20, Math.max(0.25, state.zoom * factor));
  const f = state.zoom / before;
  const ox = canvas.width / 2 + state.panX, oy = canvas.height / 2 + state.panY;
  state.panX += (cx - ox) * (1 - f);
  state.panY += (cy - oy) * (1 - f);
  draw();
}
canvas.addEventListener("wheel", (ev) => {
  ev.preventDefault();
  if (ev.ctrlKey) {
    const rect = canvas.getBoundingClientRect();
    zoomAt(ev.deltaY < 0 ? 1.1 : 1 / 1.1, ev.clientX - rect.left, ev.clientY - rect.top);
    return;
  }
  step(ev.deltaY > 0 ? 1 : -1);
}, { passive: false });

function step(d) {
  if (!state.item) return;
  if (state.labelsDirty) { say("Save (S) or discard edits before changing slice."); return; }
  const s = Math.max(0, Math.min(state.item.slices - 1, state.slice + d));
  if (s !== state.slice) { state.slice = s; state.labels = null; loadSlice(); }
}

document.addEventListener("keydown", async (ev) => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
  const r = current();
  const k = ev.key;
  if (k === "a" || k === "A") await decide("accepted");
  else if (k === "r" || k === "R") await decide("rejected");
  else if (k === "n" || k === "N" || k === "ArrowRight") await select(state.pos + 1);
  else if (k === "p" || k === "P" || k === "ArrowLeft") await select(state.pos - 1);
  else if (k === "ArrowUp") step(-1);
  else if (k === "ArrowDown") step(1);
  else if (k === "PageUp") step(-10);
  else if (k === "PageDown") step(10);
  else if (k === "+" || k === "=") zoomAt(1.2, canvas.width / 2, canvas.height / 2);
  else if (k === "-") zoomAt(1 / 1.2, canvas.width / 2, canvas.height / 2);
  else if (k === "0") { state.zoom = 1; state.panX = 0; state.panY = 0; draw(); }
  else if (k === "o" || k === "O") { state.overlay = !state.overlay; draw(); }
  else if (k === "b" || k === "B") setTool("brush");
  else if (k === "e" || k === "E") setTool("eraser");
  else if (k === "v" || k === "V") setTool("view");
  else if (k === "[") { state.brush = Math.max(1, state.brush - 1); setTool(state.tool); }
  else if (k === "]") { state.brush += 1; setTool(state.tool); }
  else if (k === "s" || k === "S") await saveMask();
  else if (k === "Tab") {
    ev.preventDefault();
    if (state.item) { state.result = (state.result + 1) % state.item.results.length; state.labels = null; renderPanel(); loadSlice(); }
  } else if (/^[1-9]$/.test(k) && r) {
    const n = Number(k);
    if (r.task === "classification" && n <= r.classes.length) await decide("corrected", r.classes[n - 1]);
    else if (r.task === "segmentation") { state.brushClass = n; renderLegend(); }
  } else return;
  ev.preventDefault();
});

async function init() {
  const me = await api("/api/me");
  state.role = me.role;
  $("me").textContent = `${me.user} (${me.role})`;
  const presets = $("presets");
  const auto = document.createElement("button");
  auto.textContent = "auto";
  auto.onclick = () => { state.level = state.item.window.level; state.width = state.item.window.width; loadSlice(); };
  presets.appendChild(auto);
  ["lung", "mediastinum", "bone", "brain", "liver"].forEach((name) => {
    const b = document.createElement("button");
    b.textContent = name;
    b.onclick = () => {
      const p = state.item && state.item.presets[name];
      if (p) { state.level = p.level; state.width = p.width; loadSlice(); }
    };
    presets.appendChild(b);
  });
  $("opacity").oninput = (ev) => { state.opacity = ev.target.value / 100; draw(); };
  $("retrain").onclick = retrain;
  if (state.role === "viewer") $("retrain").disabled = true;
  if (state.role === "admin") { $("admin").hidden = false; renderUsers(await api("/api/users")); }
  pollTraining();
  ["strategy", "status", "model"].forEach((id) => { $(id).onchange = () => loadQueue(); });
  $("label").onchange = () => loadQueue();
  const all = await api("/api/queue?status=all&n=100000");
  [...new Set(all.map((r) => r.model))].forEach((m) => {
    const o = document.createElement("option");
    o.value = m; o.textContent = m;
    $("model").appendChild(o);
  });
  await refreshProgress();
  await loadQueue();
  canvas.focus();
}

init().catch((e) => say(String(e)));
// errors of key and button actions (a refused save, a conflict) are shown, not swallowed
window.addEventListener("unhandledrejection", (ev) => say(String(ev.reason?.message || ev.reason)));

// ------------------------------------------------------------------ users (admins only)
function renderUsers(users) {
  const table = $("users");
  table.replaceChildren();
  for (const u of users) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = u.name;
    const role = document.createElement("select");
    for (const r of ["admin", "reviewer", "viewer"]) {
      const o = document.createElement("option");
      o.textContent = r; o.selected = r === u.role; role.appendChild(o);
    }
    role.onchange = () => userCall(`/api/users/${encodeURIComponent(u.name)}`, "PUT", { role: role.value },
      `${u.name} is now ${role.value}`);
    const remove = document.createElement("button");
    remove.textContent = "remove";
    remove.onclick = () => {
      if (confirm(`Remove ${u.name}? Their past reviews keep their name.`)) {
        userCall(`/api/users/${encodeURIComponent(u.name)}`, "DELETE", null, `${u.name} removed`);
      }
    };
    const cells = [name, document.createElement("td"), document.createElement("td")];
    cells[1].appendChild(role); cells[2].appendChild(remove);
    tr.append(...cells);
    table.appendChild(tr);
  }
}

async function userCall(path, method, body, done) {
  try {
    const options = { method };
    if (body) { options.headers = { "Content-Type": "application/json" }; options.body = JSON.stringify(body); }
    renderUsers(await api(path, options));
    say(done);
  } catch (err) {
    say(err.message);
    renderUsers(await api("/api/users"));
  }
}

$("adduser").onsubmit = async (ev) => {
  ev.preventDefault();
  const name = $("newname").value.trim();
  await userCall("/api/users", "POST", { name, role: $("newrole").value, password: $("newpass").value },
    `${name} saved`);
  $("newpass").value = "";
};
