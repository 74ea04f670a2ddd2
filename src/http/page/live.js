// The live page: the latest ticker of every subscribed market from /api/v1/markets, then every
// ticker and link event from /api/v1/events (Server-Sent Events). No dependencies.
"use strict";

const SPARK_POINTS = 60;
const RETRY_MS = 5000;
const rows = new Map(); // code -> {tr, price, change, spark, age, prices: [], at}
let received = 0;

const $ = (id) => document.getElementById(id);

function setState(id, state, text) {
  const pill = $(id);
  pill.dataset.state = state;
  pill.textContent = text;
}

function notice(text) {
  const p = $("notice");
  p.hidden = !text;
  p.textContent = text || "";
}

function formatPrice(value) {
  if (typeof value !== "number") return "—";
  const digits = value >= 100 ? 0 : value >= 1 ? 2 : value >= 0.01 ? 4 : 8;
  return value.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatChange(rate) {
  if (typeof rate !== "number") return "—";
  const pct = (rate * 100).toFixed(2);
  return (rate > 0 ? "+" : "") + pct + "%";
}

function row(code) {
  let r = rows.get(code);
  if (r) return r;
  const tr = document.createElement("tr");
  const cell = (cls) => {
    const td = document.createElement("td");
    td.className = cls;
    tr.appendChild(td);
    return td;
  };
  cell("code").textContent = code;
  const price = cell("num price");
  const change = cell("num change");
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", "0 0 100 28");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(svgNs, "polyline");
  svg.appendChild(line);
  cell("spark").appendChild(svg);
  const age = cell("num age");
  r = { tr, price, change, spark: line, age, prices: [], at: 0 };
  rows.set(code, r);
  // Keep the table sorted by code.
  const after = [...rows.keys()].sort().find((c) => c > code);
  document.querySelector("#markets tbody").insertBefore(tr, after ? rows.get(after).tr : null);
  $("empty").hidden = true;
  return r;
}

function drawSpark(r) {
  const p = r.prices;
  if (p.length < 2) {
    r.spark.setAttribute("points", "");
    return;
  }
  const lo = Math.min(...p), hi = Math.max(...p);
  const span = hi - lo || 1;
  const step = 100 / (SPARK_POINTS - 1);
  const x0 = 100 - (p.length - 1) * step;
  r.spark.setAttribute("points", p.map((v, i) =>
    (x0 + i * step).toFixed(2) + "," + (26 - ((v - lo) / span) * 24).toFixed(2)).join(" "));
}

function applyTicker(entry) {
  const t = entry && entry.data;
  if (!t || !t.code) return;
  const r = row(t.code);
  const changed = r.prices.length && r.prices[r.prices.length - 1] !== t.trade_price;
  r.prices.push(t.trade_price);
  if (r.prices.length > SPARK_POINTS) r.prices.shift();
  r.price.textContent = formatPrice(t.trade_price);
  r.change.textContent = formatChange(t.signed_change_rate);
  r.tr.className = t.change === "RISE" ? "rise" : t.change === "FALL" ? "fall" : "even";
  r.at = entry.received_timestamp_ms || Date.now();
  if (changed) {
    r.price.classList.remove("tick");
    void r.price.offsetWidth; // restart the animation
    r.price.classList.add("tick");
  }
  drawSpark(r);
}

function applyLink(data) {
  if (data.state === "connected") {
    setState("link-state", "connected", "Upbit: connected");
  } else {
    setState("link-state", "disconnected", "Upbit: " + (data.reason === "starting" ? "connecting" : "disconnected (" + data.reason + ")"));
  }
}

function tickAges() {
  const now = Date.now();
  for (const r of rows.values()) {
    if (!r.at) continue;
    const s = Math.max(0, Math.round((now - r.at) / 1000));
    r.age.textContent = s < 60 ? s + " s ago" : Math.round(s / 60) + " min ago";
  }
  $("counter").textContent = received.toLocaleString() + " messages";
}

async function loadMarkets() {
  const response = await fetch("/api/v1/markets", { headers: { Accept: "application/json" } });
  if (response.status === 401) {
    throw new Error("The API needs a token (control.protect_reads = true); this page cannot send one.");
  }
  if (!response.ok) throw new Error("GET /api/v1/markets answered " + response.status);
  const body = await response.json();
  for (const m of body.markets) {
    if (m.ticker) applyTicker(m.ticker);
    else row(m.code);
  }
}

function follow() {
  const source = new EventSource("/api/v1/events?types=ticker");
  source.onopen = () => {
    setState("stream-state", "live", "stream: live");
    notice("");
  };
  source.addEventListener("ticker", (e) => {
    received++;
    applyTicker(JSON.parse(e.data));
  });
  source.addEventListener("link", (e) => applyLink(JSON.parse(e.data).data));
  source.addEventListener("close", (e) => {
    const data = JSON.parse(e.data).data;
    notice("The service ended the stream (" + data.reason + "): " + data.message + ". Reconnecting…");
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (503, 404, 401): the browser gives up; try again later.
      setState("stream-state", "closed", "stream: unavailable");
      setTimeout(follow, RETRY_MS);
    } else {
      setState("stream-state", "connecting", "stream: reconnecting");
    }
  };
}

async function main() {
  setInterval(tickAges, 1000);
  try {
    await loadMarkets();
  } catch (error) {
    notice(error.message);
    if (String(error.message).includes("token")) {
      setState("stream-state", "closed", "stream: needs a token");
      return;
    }
  }
  follow();
}

main();
