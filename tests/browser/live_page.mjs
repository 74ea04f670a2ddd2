// The live page in headless Chromium: it connects, shows the link to Upbit, lists prices that
// then change, draws sparklines, has no horizontal scroll on a phone, and breaks no rule of its
// Content-Security-Policy. Saves a screenshot.
//
//   node tests/browser/live_page.mjs http://127.0.0.1:8081 docs/live-page.png
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
  check(problems.length === 0, problems.join("\n"));
  console.log("live page: ok");
} catch (error) {
  console.error("live page check failed:", error.message);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
