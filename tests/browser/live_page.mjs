// The live page in headless Chromium: it connects, shows the link to Upbit, lists prices that
// then change, draws sparklines, has no horizontal scroll on a phone, and breaks no rule of its
// Content-Security-Policy. Then a market's view: a click opens the orderbook ladder with depth
// bars, the trade tape and the candles; a reconnect of the service's link shows in the header
// and the link history. Saves a screenshot of each state: SCREENSHOT (the list),
// SCREENSHOT-market.png, SCREENSHOT-phone.png and SCREENSHOT-reconnect.png beside it.
//
//   LIVE_TOKEN=... node tests/browser/live_page.mjs http://127.0.0.1:8081 docs/live-page.png
//
// LIVE_TOKEN (the service's control token) lets the check ask for a reconnect; without it that
// step fails, since an unseen reconnect indicator is not a tested one.
//
// Needs playwright-core (PLAYWRIGHT_CORE_DIR: its package directory) and a Chromium
// (CHROMIUM, default /usr/bin/chromium); scripts/test installs both when missing.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [base, screenshot = "live-page.png"] = process.argv.slice(2);
if (!base) {
  console.error("usage: live_page.mjs BASE_URL [SCREENSHOT.png]");
  process.exit(64);
}
const coreDir = process.env.PLAYWRIGHT_CORE_DIR;
const { chromium } = await import(
  coreDir ? pathToFileURL(join(coreDir, "index.mjs")).href : "playwright-core"
);

const DEADLINE_MS = 30_000;
/** `docs/live-page.png` -> `docs/live-page-NAME.png`. */
const sibling = (name) => screenshot.replace(/(\.png)?$/, `-${name}.png`);
const problems = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** code -> price text, for rows that have a price. */
const prices = (page) =>
  page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll("#markets tbody tr")]
        .map((tr) => [tr.querySelector(".code").textContent, tr.querySelector(".price").textContent])
        .filter(([, price]) => /\d/.test(price)),
    ),
  );

try {
  const context = await browser.newContext({ viewport: { width: 960, height: 600 }, colorScheme: "light" });
  const page = await context.newPage();
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  const response = await page.goto(`${base}/`);
  check(response.status() === 200, `GET / answered ${response.status()}`);
  check(
    (response.headers()["content-security-policy"] || "").includes("script-src 'self'"),
    "the page is served with its Content-Security-Policy",
  );
  const wait = (fn, arg) => page.waitForFunction(fn, arg, { timeout: DEADLINE_MS, polling: 100 });

  await wait(() => document.getElementById("stream-state").dataset.state === "live");
  await wait(() => document.getElementById("link-state").dataset.state === "connected");
  console.log("connected:", await page.textContent("#link-state"));

  await wait(() =>
    [...document.querySelectorAll("#markets tbody td.price")].filter((td) => /\d/.test(td.textContent)).length >= 3,
  );
  const first = await prices(page);
  console.log("prices appear:", JSON.stringify(first));
  await wait(
    (before) =>
      [...document.querySelectorAll("#markets tbody tr")].some((tr) => {
        const code = tr.querySelector(".code").textContent;
        return code in before && tr.querySelector(".price").textContent !== before[code];
      }),
    first,
  );
  const later = await prices(page);
  const changed = Object.keys(first).filter((code) => later[code] !== first[code]);
  console.log("prices change:", changed.map((c) => `${c} ${first[c]} -> ${later[c]}`).join(", "));

  await wait(() =>
    [...document.querySelectorAll("td.spark polyline")].some(
      (line) => (line.getAttribute("points") || "").split(" ").length >= 10,
    ),
  );
  const counter = await page.textContent("#counter");
  check(/[1-9]/.test(counter), `the message counter moves: ${counter}`);

  // A phone: everything fits the width.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `${overflow}px of horizontal scroll at 390px wide`);
  await page.setViewportSize({ width: 960, height: 600 });

  // Let the sparklines fill a little for the picture.
  await wait(
    () =>
      [...document.querySelectorAll("td.spark polyline")].filter(
        (line) => (line.getAttribute("points") || "").split(" ").length >= 50,
      ).length >= 3,
  );
  const height = await page.evaluate(() => Math.ceil(document.body.getBoundingClientRect().bottom) + 16);
  await page.screenshot({ path: screenshot, clip: { x: 0, y: 0, width: 960, height } });
  console.log("screenshot:", screenshot);

  // Percentages: a tiny change is visible, and nothing prints as "-0.00%".
  const shown = await page.evaluate(() =>
    [-0.00002, 0.00002, -0.0000004, 0, 0.0123, -0.00005].map((r) => formatChange(r)));
  console.log("changes shown as:", shown.join(" "));
  check(!shown.includes("-0.00%") && !shown.includes("+0.00%"), `a small change shows as zero: ${shown}`);
  check(shown[0] === "-0.0020%" && shown[3] === "0.00%" && shown[4] === "+1.23%", `percent formatting: ${shown}`);

  // A market's view: orderbook ladder with depth bars, trade tape, candles.
  const code = await page.evaluate(() => {
    const tr = [...document.querySelectorAll("#markets tbody tr")].find((r) => /\d/.test(r.querySelector(".price").textContent));
    tr.click();
    return tr.dataset.code;
  });
  await wait((c) => !document.getElementById("market").hidden && document.getElementById("market-code").textContent === c, code);
  check((await page.evaluate(() => location.hash)) === `#${code}`, "the view's address names the market");
  await wait(() => document.querySelectorAll("#book tbody tr.ask").length >= 5 && document.querySelectorAll("#book tbody tr.bid").length >= 5);
  const bars = await page.evaluate(() =>
    [...document.querySelectorAll("#book .bar")].map((b) => parseFloat(b.style.width)));
  check(bars.length >= 10 && bars.some((w) => w >= 99) && bars.every((w) => w > 0 && w <= 100),
    `depth bars scale to the largest size: ${bars.slice(0, 6)}`);
  const spread = await page.evaluate(() => {
    const asks = [...document.querySelectorAll("#book tr.ask td.price")].map((td) => td.textContent);
    const bids = [...document.querySelectorAll("#book tr.bid td.price")].map((td) => td.textContent);
    return { bestAsk: asks[asks.length - 1], bestBid: bids[0] };
  });
  console.log(`orderbook of ${code}: best ask ${spread.bestAsk}, best bid ${spread.bestBid}`);
  await wait(() => document.querySelectorAll("#tape tbody tr").length >= 3);
  const sides = await page.evaluate(() => [...document.querySelectorAll("#tape tbody tr")].map((tr) => tr.className));
  check(sides.every((s) => s === "buy" || s === "sell"), `every trade has a side colour: ${sides}`);
  await wait(() => document.querySelectorAll("#candles g rect").length >= 1);
  const candleType = await page.textContent("#candle-type");
  check(/^candle\./.test(candleType), `the candle chart names its type: ${candleType}`);
  const flags = await page.evaluate(() => [...document.querySelectorAll("#market-flags li")].map((li) => li.textContent));
  check(flags.length >= 1, "the view says what the sources report about warnings");
  console.log(`market view: ${sides.length} trades, ${candleType}, flags: ${flags.join("; ")}`);
  await wait(() => document.querySelectorAll("#tape tbody tr").length >= 8);
  await page.screenshot({ path: sibling("market"), fullPage: true });
  console.log("screenshot:", sibling("market"));

  // A market the market list flags: its warning, caution and names show in the view.
  const flagged = process.env.LIVE_FLAGGED;
  check(flagged, "LIVE_FLAGGED is not set: the warning and caution flags cannot be checked");
  await page.evaluate((c) => { location.hash = c; }, flagged);
  await wait((c) => document.getElementById("market-code").textContent === c &&
    [...document.querySelectorAll("#market-flags li")].some((li) => li.textContent === "investment warning"), flagged);
  const flaggedShows = await page.evaluate(() => ({
    flags: [...document.querySelectorAll("#market-flags li")].map((li) => li.textContent),
    name: document.getElementById("market-name").textContent,
  }));
  check(flaggedShows.flags.includes("caution: price fluctuations"), `the caution shows: ${flaggedShows.flags}`);
  check(flaggedShows.name.length > 0, "the coin's name from the market list shows");
  console.log(`${flagged} (${flaggedShows.name}): ${flaggedShows.flags.join("; ")}`);
  await wait(() => document.querySelectorAll("#book tbody tr").length >= 10 && document.querySelectorAll("#tape tbody tr").length >= 3);
  await page.screenshot({ path: sibling("flagged"), fullPage: true });
  console.log("screenshot:", sibling("flagged"));

  // The view on a phone: no horizontal scroll.
  await page.setViewportSize({ width: 390, height: 844 });
  const phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(phoneOverflow <= 0, `${phoneOverflow}px of horizontal scroll in the market view at 390px wide`);
  await page.screenshot({ path: sibling("phone"), fullPage: true });
  console.log("screenshot:", sibling("phone"));
  await page.setViewportSize({ width: 960, height: 600 });

  // A reconnect of the service's link to Upbit shows on the page.
  const token = process.env.LIVE_TOKEN;
  check(token, "LIVE_TOKEN is not set: the reconnect indicator cannot be exercised");
  const answer = await fetch(`${base}/api/v1/reconnect`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  check(answer.status === 202, `POST /api/v1/reconnect answered ${answer.status}`);
  await wait(() => /reconnects: [1-9]/.test(document.getElementById("reconnects").textContent));
  await wait(() => document.getElementById("link-state").dataset.state === "connected");
  const log = await page.evaluate(() => [...document.querySelectorAll("#link-log li")].map((li) => li.textContent));
  check(log.some((line) => line.includes("disconnected") && line.includes("control")), `the link history shows the reconnect: ${log}`);
  console.log("link history:", log.slice(0, 3).join(" | "));
  await page.screenshot({ path: sibling("reconnect"), fullPage: true });
  console.log("screenshot:", sibling("reconnect"));
  check(problems.length === 0, problems.join("\n"));
  console.log("live page: ok");
} catch (error) {
  console.error("live page check failed:", error.message);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
