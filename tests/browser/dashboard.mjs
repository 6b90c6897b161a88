// The dashboard in a real browser: Debian's chromium driven by playwright-core, against a
// real `serve` (FAILOVER_BIN) with a webhook receiver started here. Screenshots of each view
// at desktop and phone width go to FAILOVER_SCREENSHOTS (a temporary directory by default).
// Run by crates/cli/tests/dashboard.rs; exits non-zero on the first failed check.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const BIN = process.env.FAILOVER_BIN;
assert.ok(BIN, "FAILOVER_BIN names the failover-notify binary");
const CHROMIUM = process.env.FAILOVER_CHROMIUM || "/usr/bin/chromium";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "failover-dashboard-"));
const SHOTS = process.env.FAILOVER_SCREENSHOTS || path.join(dir, "screenshots");
fs.mkdirSync(SHOTS, { recursive: true });

const step = (what) => console.log(`- ${what}`);
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

// A webhook receiver that refuses (404) until told otherwise.
let hookStatus = 404;
const received = [];
const hook = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    received.push({ status: hookStatus, body });
    res.writeHead(hookStatus, { "content-type": "text/plain" });
    res.end(hookStatus === 200 ? "ok" : "no such hook");
  });
});
const hookPort = await freePort();
await new Promise((r) => hook.listen(hookPort, "127.0.0.1", r));

const key = () => crypto.randomBytes(24).toString("hex");
const sha = (k) => "sha256:" + crypto.createHash("sha256").update(k).digest("hex");
const KEYS = { acme: key(), globex: key(), wall: key() };
const HOOK_TOKEN = "T0KEN-" + key();
// The windows lie away from now whenever the test runs (its reports must be unplanned): db's
// nightly hour starts 12 hours from now, Berlin time; web's is on the weekday three days on.
const later = (ms, options) =>
  new Intl.DateTimeFormat("en-GB", options).format(new Date(Date.now() + ms));
const nightlyHour = Number(later(12 * 3600e3, { timeZone: "Europe/Berlin", hour: "2-digit", hourCycle: "h23" }));
const hhmm = (h) => `${String(h % 24).padStart(2, "0")}:00`;
const NIGHTLY = { start: hhmm(nightlyHour), end: hhmm(nightlyHour + 1) };
const WEB_DAY = later(3 * 86400e3, { timeZone: "America/New_York", weekday: "short" }).toLowerCase();
const port = await freePort();
const BASE = `http://127.0.0.1:${port}`;
fs.writeFileSync(
  path.join(dir, "inventory.toml"),
  `
[server]
public_url = "${BASE}"
[events]
flapping_count = 50
failback_within = "3s"

[[customers]]
name = "acme"
time_zone = "Europe/Berlin"

[[customers]]
name = "globex"
time_zone = "America/New_York"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

[[windows]]
name = "nightly-patch"
cluster = "db"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "${NIGHTLY.start}"
duration = "1h"

[[clusters]]
name = "web"
customer = "globex"
nodes = ["web1", "web2"]

[[windows]]
name = "weekly"
cluster = "web"
days = ["${WEB_DAY}"]
start = "02:30"
duration = "2h"

[[channels]]
name = "hook"
kind = "webhook"
format = "generic"
url = "http://127.0.0.1:${hookPort}/hooks/${HOOK_TOKEN}"

[[routes]]
channels = ["hook"]

[[keys]]
name = "acme-ops"
customer = "acme"
hash = "${sha(KEYS.acme)}"

[[keys]]
name = "globex-ops"
customer = "globex"
hash = "${sha(KEYS.globex)}"

[[keys]]
name = "wall"
admin = true
role = "viewer"
hash = "${sha(KEYS.wall)}"
`,
);

const serve = spawn(
  BIN,
  ["serve", "-c", path.join(dir, "inventory.toml"), "--db", `sqlite://${dir}/db.sqlite`, "--listen", `127.0.0.1:${port}`],
  { stdio: ["ignore", "pipe", "pipe"] },
);
let serveLog = "";
serve.stdout.on("data", (d) => (serveLog += d));
serve.stderr.on("data", (d) => (serveLog += d));

let browser;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, check, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function report(k, body) {
  const r = await fetch(BASE + "/", {
    method: "POST",
    headers: { "x-api-key": k, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  assert.equal(r.status, 200, JSON.stringify(answer));
  return answer;
}

async function signIn(page, k) {
  await page.goto(BASE + "/ui/now");
  assert.match(page.url(), /\/ui\/signin\?next=\/ui\/now$/, "an unsigned visit goes to the sign-in form");
  await page.fill("#key", k);
  await page.click("button[type=submit]");
  await page.waitForURL(BASE + "/ui/now");
}

async function shoot(page, name) {
  for (const [width, height, suffix] of [
    [1280, 860, "desktop"],
    [390, 844, "phone"],
  ]) {
    await page.setViewportSize({ width, height });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${name} at ${width}px scrolls sideways by ${overflow}px`);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${suffix}.png`), fullPage: false });
  }
  await page.setViewportSize({ width: 1280, height: 860 });
}

try {
  await until("serve to answer /healthz", async () => (await fetch(BASE + "/healthz").catch(() => null))?.ok);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });

  step("reports: a start and an unplanned failover for each customer");
  await report(KEYS.acme, { hostname: "db1" });
  const unplanned = await report(KEYS.acme, { hostname: "db2" });
  assert.equal(unplanned.verdict.verdict, "unplanned");
  await report(KEYS.globex, { hostname: "web1" });
  const globexEvent = await report(KEYS.globex, { hostname: "web2" });

  step("a customer's key sees only its customer");
  const globex = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  let page = await globex.newPage();
  await signIn(page, KEYS.globex);
  const clusters = await page.$$eval("tr.event td[data-label=Cluster]", (tds) => tds.map((t) => t.textContent));
  assert.ok(clusters.length === 2 && clusters.every((c) => c.includes("web")), `globex sees ${clusters}`);
  assert.ok(!(await page.content()).includes("acme"), "nothing of acme on globex's page");
  const other = await page.goto(`${BASE}/ui/events/${unplanned.event_id}`);
  assert.equal(other.status(), 404, "another customer's event is not found");
  await page.goto(`${BASE}/ui/events/${globexEvent.event_id}`);
  assert.equal(await page.textContent("h1 .badge.unplanned"), "unplanned");

  step("signing out ends the session, also for a copy of its cookie");
  const copied = (await globex.cookies()).find((c) => c.name === "failover_session");
  assert.ok(copied && copied.httpOnly && copied.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  assert.ok(!copied.value.includes(KEYS.globex), "the cookie holds no key");
  await page.click("text=Sign out");
  await page.waitForURL(/\/ui\/signin$/);
  await page.goto(BASE + "/ui/now");
  assert.match(page.url(), /\/ui\/signin/, "pages are refused after signing out");
  await globex.addCookies([copied]);
  await page.goto(BASE + "/ui/clusters");
  assert.match(page.url(), /\/ui\/signin/, "the old cookie no longer signs in");
  await globex.close();

  step("a wrong key and a sign-in without its CSRF token are refused");
  const acme = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await acme.newPage();
  await page.goto(BASE + "/ui/signin");
  await page.fill("#key", "not-a-key");
  await page.click("button[type=submit]");
  assert.match(await page.textContent(".notice.error"), /that key is not valid/);
  const noCsrf = await page.request.post(BASE + "/ui/signin", { form: { key: KEYS.acme }, maxRedirects: 0 });
  assert.equal(noCsrf.status(), 403, "sign-in without the CSRF token");

  step("planned and unplanned badges on Now");
  await signIn(page, KEYS.acme);
  assert.equal(await page.textContent(`tr[data-event="${unplanned.event_id}"] .badge.unplanned`), "unplanned");
  assert.ok(await page.$("tr.event .badge.cluster-start"), "the cluster's first report is a start");
  await shoot(page, "now");

  step("a 1 h window from the form: preview, add, and the next failover is planned");
  await page.click("nav >> text=Maintenance");
  await page.selectOption("#target", "cluster:db");
  await page.check("input[name=preset][value='1h']");
  await page.fill("#reason", "kernel patch");
  await page.click("button[value=preview]");
  assert.match(await page.textContent(".preview"), /db: .* to .*Europe\/Berlin/, "the preview names the covered cluster in its zone");
  assert.equal(await page.locator(".window").count(), 0, "a preview saves nothing");
  await page.click("button[value=add]");
  await page.waitForURL(/added=/);
  assert.match(await page.textContent("tr.window"), /cluster db/);
  await shoot(page, "maintenance");
  await page.goto(BASE + "/ui/now");
  assert.match(await page.textContent(".banner"), /maintenance #\d+ on cluster db: kernel patch/);
  const planned = await report(KEYS.acme, { hostname: "db1", id: "db1-takeover" });
  assert.equal(planned.verdict.verdict, "planned");
  await report(KEYS.acme, { hostname: "db2", action: "release", id: "db2-release" });
  await page.reload();
  assert.equal(await page.textContent(`tr[data-event="${planned.event_id}"] .badge.planned`), "planned");

  step("the event: both nodes' reports, why it is planned, its delivery");
  await page.click(`tr[data-event="${planned.event_id}"] a`);
  const timeline = await page.$$eval(".timeline li", (lis) => lis.map((l) => l.textContent.replace(/\s+/g, " ")));
  assert.equal(timeline.length, 2, `two reports: ${timeline}`);
  assert.match(timeline[0], /db1 said takeover/);
  assert.match(timeline[1], /db2 said release/);
  assert.match(await page.textContent(".why"), /inside window “maintenance #\d+: kernel patch” of db/);
  await until("the webhook to refuse the planned event", () => received.some((r) => r.body.includes(`"${planned.event_id}"`)));
  await page.reload();
  assert.equal(await page.locator("tr.delivery-row[data-channel=hook]").count(), 1);
  await shoot(page, "event");

  step("ending the window: the next failover is unplanned again");
  await page.goto(BASE + "/ui/maintenance");
  await page.click("tr.window button:has-text('End now')");
  await page.waitForURL(/ended=/);
  assert.equal(await page.locator("tr.window").count(), 0, "no open window");
  const after = await report(KEYS.acme, { hostname: "db2", id: "db2-again" });
  assert.equal(after.verdict.verdict, "unplanned");

  step("a failed webhook delivery shows its error, redacted, and “send again” delivers it");
  await until("the unplanned event's delivery to fail", async () => {
    const r = await fetch(`${BASE}/v1/events/${after.event_id}`, { headers: { "x-api-key": KEYS.acme } });
    return (await r.json()).deliveries[0].status === "failed";
  });
  await page.goto(`${BASE}/ui/events/${after.event_id}`);
  const row = page.locator("tr.delivery-row[data-channel=hook]");
  assert.match(await row.textContent(), /failed/);
  assert.match(await row.locator(".error-text").textContent(), /HTTP 404/);
  assert.ok(!(await page.content()).includes(HOOK_TOKEN), "the webhook URL's secret is not on the page");
  hookStatus = 200;
  await row.locator("button:has-text('Send again')").click();
  await page.waitForURL(/resent=/);
  assert.match(await page.textContent("[role=status]"), /sent again/);
  await until("the webhook to receive it", () => received.some((r) => r.status === 200 && r.body.includes(`"${after.event_id}"`)));
  await until("the delivery to show as delivered", async () => {
    await page.reload();
    return /delivered/.test(await row.textContent());
  });

  step("a form posted without the CSRF token is refused and changes nothing");
  const forged = await page.request.post(BASE + "/ui/maintenance", {
    form: { target: "cluster:db", preset: "1h", reason: "forged", action: "add" },
    maxRedirects: 0,
  });
  assert.equal(forged.status(), 403);
  assert.match(await forged.text(), /CSRF token is missing or wrong/);
  await page.goto(BASE + "/ui/maintenance");
  assert.equal(await page.locator("tr.window").count(), 0, "no window was added");

  step("clusters: the node active now, away from its usual node past the failback interval");
  await sleep(3200);
  await page.goto(BASE + "/ui/clusters");
  const db = page.locator("tr.cluster[data-cluster=db]");
  assert.match(await db.locator("td[data-label='Active now']").textContent(), /db2.*away from db1/s);
  assert.ok(await db.evaluate((tr) => tr.classList.contains("away")));
  assert.match(await db.locator("td[data-label='Next window']").textContent(), /nightly-patch/);
  await shoot(page, "clusters");

  step("windows: week and month, in a zone of the viewer's choice, and the iCalendar file");
  await page.goto(BASE + "/ui/windows?zone=America/New_York");
  const week = await page.$$eval(".day .occurrence", (os) => os.map((o) => o.textContent));
  assert.equal(week.length, 7, `a nightly window each day: ${week.length}`);
  assert.ok(week.every((o) => /nightly-patch/.test(o) && new RegExp(`${NIGHTLY.start} CES?T–${NIGHTLY.end} CES?T Europe/Berlin`).test(o)), week[0]);
  // New York is 6 hours behind Berlin, 5 in the weeks their DST dates differ.
  const nyStart = `(${hhmm(nightlyHour + 18)}|${hhmm(nightlyHour + 19)})`;
  assert.ok(week.every((o) => new RegExp(`^${nyStart}–`).test(o.trim())), `New York times: ${week[0]}`);
  await shoot(page, "windows-week");
  await page.click("text=month view");
  assert.ok((await page.locator(".calendar.month .day").count()) >= 28);
  await shoot(page, "windows-month");
  const ics = await page.request.get(BASE + (await page.getAttribute("text=iCalendar file (180 days)", "href")));
  assert.equal(ics.status(), 200);
  assert.match(ics.headers()["content-type"], /text\/calendar/);
  assert.match(await ics.text(), /BEGIN:VCALENDAR[\s\S]*nightly-patch/);
  step("a calendar app subscribes with a link that reads only the feed");
  await page.goto(BASE + "/ui/windows?cluster=db");
  await page.click("text=Subscribe in a calendar app");
  const feedUrl = await page.inputValue("#feed-url");
  assert.match(feedUrl, new RegExp(`^${BASE}/ui/feed\\.ics\\?token=[0-9a-f]{64}&cluster=db$`));
  const feed = await fetch(feedUrl); // no cookie, as a calendar app
  assert.equal(feed.status, 200);
  assert.match(await feed.text(), /BEGIN:VCALENDAR[\s\S]*nightly-patch/);
  const token = new URL(feedUrl).searchParams.get("token");
  assert.equal((await fetch(feedUrl.replace(token, "0".repeat(64)))).status, 401, "a wrong token");
  const asCookie = await fetch(BASE + "/ui/now", { headers: { cookie: `failover_session=${token}` }, redirect: "manual" });
  assert.equal(asCookie.status, 303, "a feed token opens no session");
  const badZone = await page.goto(BASE + "/ui/windows?zone=Mars/Olympus");

  assert.equal(badZone.status(), 400);
  assert.match(await page.textContent(".notice.error"), /unknown time zone `Mars\/Olympus`/);

  step("dark mode and the keyboard");
  const dark = await browser.newContext({ colorScheme: "dark", viewport: { width: 1280, height: 860 } });
  const darkPage = await dark.newPage();
  await darkPage.goto(BASE + "/ui/signin");
  const bg = await darkPage.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(21, 23, 27)", "a dark background in dark mode");
  assert.equal(await darkPage.evaluate(() => document.activeElement.id), "key", "the key field has the focus");
  await darkPage.keyboard.type(KEYS.acme);
  await darkPage.keyboard.press("Enter");
  await darkPage.waitForURL(BASE + "/ui/now");
  await darkPage.keyboard.press("Tab");
  assert.equal(await darkPage.evaluate(() => document.activeElement.textContent), "Skip to content");
  await darkPage.screenshot({ path: path.join(SHOTS, "now-dark.png") });
  await dark.close();

  step("a viewer key reads everything and changes nothing");
  const wall = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const wallPage = await wall.newPage();
  await signIn(wallPage, KEYS.wall);
  const all = await wallPage.$$eval("tr.event td[data-label=Cluster]", (tds) => tds.map((t) => t.textContent));
  assert.ok(all.some((c) => c.includes("db")) && all.some((c) => c.includes("web")), "an admin viewer sees every customer");
  await wallPage.goto(`${BASE}/ui/events/${after.event_id}`);
  assert.equal(await wallPage.locator("text=Send again").count(), 0);
  await wallPage.goto(BASE + "/ui/maintenance");
  assert.equal(await wallPage.locator("text=Add a window").count(), 0);
  const csrf = await wallPage.getAttribute("input[name=csrf]", "value");
  const refused = await wallPage.request.post(BASE + "/ui/maintenance", {
    form: { target: "cluster:db", preset: "1h", reason: "x", action: "add", csrf },
    maxRedirects: 0,
  });
  assert.equal(refused.status(), 403);
  assert.match(await refused.text(), /viewer key/);
  await wall.close();
  await acme.close();
  console.log(`all dashboard checks passed; screenshots in ${SHOTS}`);
} catch (e) {
  console.error(e);
  console.error("--- serve's log ---\n" + serveLog.slice(-4000));
  process.exitCode = 1;
} finally {
  await browser?.close();
  serve.kill("SIGTERM");
  hook.close();
}
