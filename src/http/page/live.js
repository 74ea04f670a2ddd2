// The live page: the latest ticker of every subscribed market from /api/v1/markets, then every
// ticker and link event from /api/v1/events (Server-Sent Events). Selecting a market (a click,
// or #CODE in the address) opens its view: the orderbook ladder with depth bars, the trade tape
// and the latest candles, from /api/v1/markets/CODE and a second stream for that code only.
// No dependencies; nothing inline, so the page keeps its strict Content-Security-Policy.
"use strict";

const SPARK_POINTS = 60;
const TAPE_ROWS = 30;
const BOOK_LEVELS = 15; // per side shown; Upbit sends up to 30
const CANDLES = 40;
const LINK_LOG = 12;
const RETRY_MS = 5000;
const CANDLE_TYPES = ["candle.1s", "candle.1m", "candle.3m", "candle.5m", "candle.10m",
  "candle.15m", "candle.30m", "candle.60m", "candle.240m"];
const SVG_NS = "http://www.w3.org/2000/svg";

const rows = new Map(); // code -> {tr, price, change, spark, age, prices: [], at, ticker}
let received = 0;
const linkStates = new Map(); // connection -> last state seen ("connected" / "disconnected")
let reconnects = 0;
// The market view: the selected code and what is shown of it.
const view = { code: null, source: null, book: null, trades: [], candles: new Map(), candleType: null };

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
  if (typeof value !== "number" || !isFinite(value)) return "—";
  const digits = value >= 100 ? 0 : value >= 1 ? 2 : value >= 0.01 ? 4 : 8;
  return value.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatSize(value) {
  if (typeof value !== "number" || !isFinite(value)) return "—";
  const digits = value >= 1000 ? 0 : value >= 1 ? 3 : 6;
  return value.toLocaleString(undefined, { maximumFractionDigits: digits });
}

// A signed percentage with enough digits that a small change shows: +1.23%, -0.0020%, 0.00%.
// Never "-0.00%": a change that rounds to zero at two decimals gets two significant digits.
function formatChange(rate) {
  if (typeof rate !== "number" || !isFinite(rate)) return "—";
  const pct = rate * 100;
  if (pct === 0) return "0.00%";
  const abs = Math.abs(pct);
  const digits = abs >= 0.005 ? 2 : Math.min(8, 1 - Math.floor(Math.log10(abs)));
  return (pct > 0 ? "+" : "-") + abs.toFixed(digits) + "%";
}

function direction(change) {
  return change === "RISE" ? "rise" : change === "FALL" ? "fall" : "even";
}

// --- the market list ----------------------------------------------------------------------------

function row(code) {
  let r = rows.get(code);
  if (r) return r;
  const tr = document.createElement("tr");
  tr.tabIndex = 0;
  tr.dataset.code = code;
  tr.title = "show " + code;
  const cell = (cls) => {
    const td = document.createElement("td");
    td.className = cls;
    tr.appendChild(td);
    return td;
  };
  cell("code").textContent = code;
  const price = cell("num price");
  const change = cell("num change");
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 100 28");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(SVG_NS, "polyline");
  svg.appendChild(line);
  cell("spark").appendChild(svg);
  const age = cell("num age");
  tr.addEventListener("click", () => select(code));
  tr.addEventListener("keydown", (e) => { if (e.key === "Enter") select(code); });
  r = { tr, price, change, spark: line, age, prices: [], at: 0, ticker: null };
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
  r.tr.className = direction(t.change) + (view.code === t.code ? " selected" : "");
  r.at = entry.received_timestamp_ms || Date.now();
  r.ticker = t;
  if (changed) {
    r.price.classList.remove("tick");
    void r.price.offsetWidth; // restart the animation
    r.price.classList.add("tick");
  }
  drawSpark(r);
  if (view.code === t.code) showHeader(t);
}

// --- the link to Upbit ----------------------------------------------------------------------------

// Link events: the first one of every stream is the current state, so only a change of state
// is logged, and only a disconnected -> connected change counts as a reconnect.
function applyLink(data) {
  const connection = data.connection || 0;
  const state = data.state === "disconnected" && data.reason === "starting" ? "starting" : data.state;
  const before = linkStates.get(connection);
  linkStates.set(connection, state);
  if (before === state) return;
  if (state === "connected") {
    if (before === "disconnected") reconnects++;
    setState("link-state", "connected", "Upbit: connected");
  } else {
    setState("link-state", "disconnected", "Upbit: " + (data.reason === "starting" ? "connecting" : "disconnected (" + data.reason + ")"));
  }
  $("reconnects").textContent = "reconnects: " + reconnects;
  const li = document.createElement("li");
  li.className = data.state;
  const at = data.timestamp_ms ? new Date(data.timestamp_ms).toLocaleTimeString() : "";
  const where = data.connection ? " (connection " + data.connection + ")" : "";
  li.textContent = at + " " + data.state + where + (data.reason ? ": " + data.reason : "") +
    (data.detail ? " — " + data.detail : "");
  const log = $("link-log");
  log.insertBefore(li, log.firstChild);
  while (log.children.length > LINK_LOG) log.removeChild(log.lastChild);
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

// --- the market view ------------------------------------------------------------------------------

function showHeader(t) {
  $("market-price").textContent = formatPrice(t.trade_price);
  const change = $("market-change");
  change.textContent = formatChange(t.signed_change_rate);
  change.className = "num " + direction(t.change);
  showFlags(t);
}

// What the latest ticker (and, where the API gives it, the market list) says about the market.
// Only what a source said is shown: no ticker, no claim either way.
function showFlags(t, marketEvent) {
  const flags = [];
  const event = marketEvent || view.marketEvent;
  // The market list's warning wins; the ticker's deprecated one only while the list is silent.
  const listSpoke = !!event && typeof event.warning === "boolean";
  if (t) {
    if (t.market_state && t.market_state !== "ACTIVE") flags.push(["warn", "state: " + t.market_state]);
    if (t.is_trading_suspended === true) flags.push(["bad", "trading suspended"]);
    if (!listSpoke && t.market_warning && t.market_warning !== "NONE") flags.push(["warn", "warning: " + t.market_warning]);
    if (t.delisting_date) flags.push(["bad", "delisting " + t.delisting_date]);
  }
  if (event) {
    if (event.warning === true) flags.push(["warn", "investment warning"]);
    for (const [reason, on] of Object.entries(event.caution || {})) {
      if (on === true) flags.push(["warn", "caution: " + reason.toLowerCase().replace(/_/g, " ")]);
    }
  }
  const ul = $("market-flags");
  ul.textContent = "";
  if (!t && !event) return;
  if (flags.length === 0) flags.push(["ok", "no warning or caution reported"]);
  for (const [kind, text] of flags) {
    const li = document.createElement("li");
    li.className = "flag " + kind;
    li.textContent = text;
    ul.appendChild(li);
  }
}

function renderBook() {
  const tbody = $("book").querySelector("tbody");
  tbody.textContent = "";
  const o = view.book;
  const all = (o && Array.isArray(o.orderbook_units)) ? o.orderbook_units : [];
  const units = all.slice(0, BOOK_LEVELS);
  $("book-empty").hidden = units.length > 0;
  $("book-note").textContent = all.length > units.length ? units.length + " of " + all.length + " levels" : (units.length ? units.length + " levels" : "");
  if (!units.length) return;
  const max = Math.max(...units.flatMap((u) => [u.ask_size, u.bid_size]).filter((v) => isFinite(v)), 0) || 1;
  const line = (side, price, size) => {
    const tr = document.createElement("tr");
    tr.className = side;
    const bar = (value) => {
      const td = document.createElement("td");
      td.className = "num depth";
      if (value !== null) {
        const fill = document.createElement("span");
        fill.className = "bar";
        fill.style.width = Math.max(1, (value / max) * 100).toFixed(1) + "%";
        const label = document.createElement("span");
        label.className = "label";
        label.textContent = formatSize(value);
        td.append(fill, label);
      }
      return td;
    };
    const p = document.createElement("td");
    p.className = "num price";
    p.textContent = formatPrice(price);
    tr.append(bar(side === "ask" ? size : null), p, bar(side === "bid" ? size : null));
    tbody.appendChild(tr);
  };
  // Asks from the highest down to the best, then bids from the best down: the spread in the middle.
  for (const u of [...units].reverse()) line("ask", u.ask_price, u.ask_size);
  for (const u of units) line("bid", u.bid_price, u.bid_size);
}

function addTrade(t) {
  if (!t || typeof t.trade_price !== "number") return;
  if (t.sequential_id && view.trades.some((x) => x.sequential_id === t.sequential_id)) return;
  view.trades.unshift(t);
  if (view.trades.length > TAPE_ROWS) view.trades.length = TAPE_ROWS;
  renderTape();
}

function renderTape() {
  const tbody = $("tape").querySelector("tbody");
  tbody.textContent = "";
  $("tape-empty").hidden = view.trades.length > 0;
  for (const t of view.trades) {
    const tr = document.createElement("tr");
    // BID: a buyer took the ask (shown in the rise colour); ASK: a seller hit the bid.
    tr.className = t.ask_bid === "BID" ? "buy" : "sell";
    const time = t.trade_timestamp ? new Date(t.trade_timestamp).toLocaleTimeString() : (t.trade_time || "");
    for (const [cls, text] of [["", time], ["num", formatPrice(t.trade_price)], ["num", formatSize(t.trade_volume)]]) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
}

// Upbit sends the candle in progress again and again as it changes: the same start time
// replaces the earlier one.
function addCandle(entry) {
  const c = entry && entry.data;
  if (!c || !c.candle_date_time_utc) return;
  const type = entry.type || entry.event;
  if (view.candleType && type !== view.candleType) {
    // One candle type in the chart: the shortest seen first stays.
    return;
  }
  view.candleType = type;
  view.candles.set(c.candle_date_time_utc, c);
  const keys = [...view.candles.keys()].sort();
  while (keys.length > CANDLES) view.candles.delete(keys.shift());
  renderCandles();
}

function renderCandles() {
  const svg = $("candles");
  svg.textContent = "";
  const list = [...view.candles.keys()].sort().map((k) => view.candles.get(k));
  $("candles-empty").hidden = list.length > 0;
  $("candle-type").textContent = view.candleType || "";
  if (!list.length) return;
  const lo = Math.min(...list.map((c) => c.low_price));
  const hi = Math.max(...list.map((c) => c.high_price));
  const span = hi - lo || 1;
  const y = (v) => 96 - ((v - lo) / span) * 92;
  const w = 300 / CANDLES;
  list.forEach((c, i) => {
    const x = 300 - (list.length - i) * w;
    const g = document.createElementNS(SVG_NS, "g");
    g.setAttribute("class", c.trade_price > c.opening_price ? "rise" : c.trade_price < c.opening_price ? "fall" : "even");
    const wick = document.createElementNS(SVG_NS, "line");
    wick.setAttribute("x1", (x + w / 2).toFixed(2));
    wick.setAttribute("x2", (x + w / 2).toFixed(2));
    wick.setAttribute("y1", y(c.high_price).toFixed(2));
    wick.setAttribute("y2", y(c.low_price).toFixed(2));
    const body = document.createElementNS(SVG_NS, "rect");
    const top = y(Math.max(c.opening_price, c.trade_price));
    body.setAttribute("x", (x + w * 0.15).toFixed(2));
    body.setAttribute("width", (w * 0.7).toFixed(2));
    body.setAttribute("y", top.toFixed(2));
    body.setAttribute("height", Math.max(0.8, y(Math.min(c.opening_price, c.trade_price)) - top).toFixed(2));
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = c.candle_date_time_utc + " UTC  O " + formatPrice(c.opening_price) + " H " +
      formatPrice(c.high_price) + " L " + formatPrice(c.low_price) + " C " + formatPrice(c.trade_price);
    g.append(wick, body, title);
    svg.appendChild(g);
  });
}

function closeView() {
  if (view.source) view.source.close();
  Object.assign(view, { code: null, source: null, book: null, trades: [], candles: new Map(), candleType: null, marketEvent: null });
  $("market").hidden = true;
  document.body.classList.remove("viewing");
  for (const r of rows.values()) r.tr.classList.remove("selected");
}

async function select(code) {
  if (view.code === code) return;
  closeView();
  if (location.hash !== "#" + code) history.replaceState(null, "", "#" + code);
  view.code = code;
  $("market").hidden = false;
  document.body.classList.add("viewing");
  $("market-code").textContent = code;
  $("market-name").textContent = "";
  const r = rows.get(code);
  if (r) r.tr.classList.add("selected");
  if (r && r.ticker) showHeader(r.ticker);
  else { $("market-price").textContent = "—"; $("market-change").textContent = ""; showFlags(null); }
  renderBook();
  renderTape();
  renderCandles();
  try {
    const response = await fetch("/api/v1/markets/" + encodeURIComponent(code), { headers: { Accept: "application/json" } });
    if (view.code !== code) return;
    if (!response.ok) {
      notice(code + ": GET /api/v1/markets/" + code + " answered " + response.status);
    } else {
      const m = await response.json();
      if (view.code !== code) return;
      // The market list's entry: names, and the market event (Upbit's warning and cautions).
      view.marketEvent = (m.listing && m.listing.market_event) || null;
      if (m.listing && (m.listing.english_name || m.listing.korean_name)) {
        $("market-name").textContent = [m.listing.english_name, m.listing.korean_name].filter(Boolean).join(" · ");
      }
      if (m.ticker) applyTicker(m.ticker);
      else showFlags(null);
      if (m.orderbook) { view.book = m.orderbook.data; renderBook(); }
      if (m.trade) addTrade(m.trade.data);
      if (m.candle) addCandle(m.candle);
    }
  } catch (error) {
    notice(error.message);
  }
  if (view.code !== code) return;
  const source = new EventSource("/api/v1/events?codes=" + encodeURIComponent(code) + "&types=" +
    ["trade", "orderbook", ...CANDLE_TYPES].join(","));
  view.source = source;
  source.addEventListener("orderbook", (e) => {
    received++;
    view.book = JSON.parse(e.data).data;
    renderBook();
  });
  source.addEventListener("trade", (e) => {
    received++;
    addTrade(JSON.parse(e.data).data);
  });
  for (const type of CANDLE_TYPES) {
    source.addEventListener(type, (e) => {
      received++;
      addCandle(JSON.parse(e.data));
    });
  }
}

function route() {
  const code = decodeURIComponent(location.hash.slice(1));
  if (/^[A-Z]+-[A-Z0-9]+$/.test(code)) select(code);
  else closeView();
}

// --- start ------------------------------------------------------------------------------------

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
  $("market-close").addEventListener("click", (e) => {
    e.preventDefault();
    history.replaceState(null, "", location.pathname);
    closeView();
  });
  window.addEventListener("hashchange", route);
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
  route();
}

main();
