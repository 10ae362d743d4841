// End-to-end tests: Debian's Chromium driven by playwright-core against a running snapsong
// server (tiny models). BASE_URL points at it; screenshots go to test-results/.
//   BASE_URL=http://127.0.0.1:3000 node run.mjs
import assert from "node:assert/strict";
import { mkdirSync, existsSync } from "node:fs";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL ?? "http://127.0.0.1:3000";
const OUT = new URL("./test-results/", import.meta.url).pathname;
const PHOTO = new URL("../tests/fixtures/photos/landscape.jpg", import.meta.url).pathname;
const PHOTO2 = new URL("../tests/fixtures/photos/portrait.png", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);
mkdirSync(OUT, { recursive: true });

const VIEWPORTS = [
  { name: "desktop", viewport: { width: 1440, height: 900 } },
  { name: "mobile", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
];

let failures = 0;
async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    throw e;
  }
}

const num = async (loc, attr) => parseFloat(await loc.getAttribute(attr));

// Records every change of the making-it view's stage/progress (set before page scripts run).
const RECORD_PROGRESS = () => {
  window.__seen = [];
  new MutationObserver(() => {
    const m = document.querySelector("[data-testid=making]");
    if (m) {
      const v = `${m.dataset.stage}:${m.dataset.progress}`;
      if (window.__seen.at(-1) !== v) window.__seen.push(v);
    }
  }).observe(document, { subtree: true, childList: true, attributes: true });
};

async function makeSong(page, vp, { genre, duration }) {
  await page.goto(BASE + "/");
  await page.waitForSelector("body[data-hydrated]", { timeout: 30000 });
  await page.screenshot({ path: `${OUT}upload-${vp}.png`, fullPage: true });
  await page.setInputFiles("[data-testid=file-input]", PHOTO);
  await page.waitForSelector("[data-testid=preview]");
  await page.selectOption("select[name=genre]", genre);
  await page.locator("input[name=duration]").fill(String(duration));
  await page.screenshot({ path: `${OUT}upload-picked-${vp}.png`, fullPage: true });
  await page.click("[data-testid=make]");
  await page.waitForURL(/\/s\/[A-Za-z0-9]{12}$/, { timeout: 30000 });
  return page.url();
}

async function journey(browser, vp) {
  const ctx = await browser.newContext({ ...vp, acceptDownloads: true });
  const page = await ctx.newPage();
  await page.addInitScript(`(${RECORD_PROGRESS})()`);
  page.on("pageerror", (e) => console.log(`  [${vp.name} page error] ${e}`));
  // The security headers' CSP must let everything the app does run.
  const cspViolations = [];
  page.on("console", (m) => {
    if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  let songUrl;

  await step(`${vp.name}: upload a photo with choices → song page`, async () => {
    songUrl = await makeSong(page, vp.name, { genre: "jazz", duration: 30 });
  });

  const audioRequests = [];
  page.on("request", (r) => { if (/\/song\.(wav|mp3)$/.test(r.url())) audioRequests.push(r.url()); });

  await step(`${vp.name}: the song plays while it is still being made, without a gap`, async () => {
    // The server makes songs at 2× real time (--pace 2): playback starts by itself once
    // it cannot catch up, while the page still says "making".
    const live = page.locator("[data-testid=live]");
    await page.waitForSelector("[data-testid=live][data-state=playing]", { timeout: 60000 });
    assert.equal(await page.locator("[data-testid=making]").count(), 1, "not making any more");
    const t1 = await num(live, "data-time");
    const w1 = Date.now();
    await page.waitForTimeout(4500); // past at least two 2 s chunk boundaries
    const t2 = await num(live, "data-time");
    const wall = (Date.now() - w1) / 1000;
    assert.equal(await page.locator("[data-testid=making]").count(), 1, "the song finished too early to tell");
    assert.ok(t2 - t1 > wall - 0.6, `live time ${t1} → ${t2} in ${wall} s: a gap`);
    assert.equal(await live.getAttribute("data-stalls"), "0", "playback stalled");
    await page.screenshot({ path: `${OUT}live-${vp.name}.png`, fullPage: true });
  });

  await step(`${vp.name}: stages and progress advance, player appears without reload`, async () => {
    await page.evaluate(() => (window.__sameDocument = true));
    await page.waitForSelector("[data-testid=player]:is([data-state=paused], [data-state=playing])", { timeout: 120000 });
    // It took over from the live audio at the same place, playing: pause it.
    if ((await page.getAttribute("[data-testid=player]", "data-state")) === "playing") {
      await page.click("[data-testid=play]");
      await page.waitForSelector("[data-testid=player][data-state=paused]");
    }
    // Phones fetch the MP3, larger screens the WAV.
    const want = vp.name === "mobile" ? /song\.mp3$/ : /song\.wav$/;
    assert.ok(audioRequests.some((u) => want.test(u)), `audio fetched: ${audioRequests}`);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page reloaded");
    const seen = await page.evaluate(() => window.__seen);
    const values = seen.map((s) => parseFloat(s.split(":")[1]));
    assert.ok(new Set(seen.map((s) => s.split(":")[0])).size >= 2, `stages seen: ${seen}`);
    assert.ok(values.some((v, i) => i > 0 && v > values[i - 1]), `progress never rose: ${seen}`);
    await page.screenshot({ path: `${OUT}song-${vp.name}.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: `${OUT}song-dark-${vp.name}.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: "light" });
  });

  await step(`${vp.name}: play → time advances and the visualizer draws`, async () => {
    const player = page.locator("[data-testid=player]");
    await page.click("[data-testid=play]");
    await page.waitForSelector("[data-testid=player][data-state=playing]");
    const t1 = await num(player, "data-time");
    const viz = page.locator("[data-testid=visualizer]");
    const f1 = await viz.evaluate((c) => c.toDataURL());
    await page.waitForTimeout(700);
    const t2 = await num(player, "data-time");
    const f2 = await viz.evaluate((c) => c.toDataURL());
    assert.ok(t2 > t1 + 0.3, `time did not advance: ${t1} → ${t2}`);
    assert.notEqual(f1, f2, "the visualizer canvas did not change between frames");
  });

  await step(`${vp.name}: +5 s / −5 s and waveform seeking`, async () => {
    const player = page.locator("[data-testid=player]");
    const a = await num(player, "data-time");
    await page.click("[data-testid=fwd5]");
    await page.waitForTimeout(150);
    const b = await num(player, "data-time");
    assert.ok(b > a + 4 && b < a + 6.5, `+5: ${a} → ${b}`);
    await page.click("[data-testid=back5]");
    await page.waitForTimeout(150);
    const c = await num(player, "data-time");
    assert.ok(c < b - 4 && c > b - 6.5, `−5: ${b} → ${c}`);
    const wave = page.locator("[data-testid=waveform]");
    const box = await wave.boundingBox();
    await page.mouse.click(box.x + box.width * 0.75, box.y + box.height / 2);
    await page.waitForTimeout(150);
    const d = await num(player, "data-time");
    const dur = await num(player, "data-duration");
    assert.ok(Math.abs(d - 0.75 * dur) < 1.5, `seek to 75%: ${d} of ${dur}`);
    await page.click("[data-testid=play]"); // pause
  });

  await step(`${vp.name}: download gives a WAV`, async () => {
    const href = await page.getAttribute("[data-testid=download]", "href");
    const res = await page.request.get(BASE + href);
    assert.equal(res.status(), 200);
    const body = await res.body();
    assert.equal(body.subarray(0, 4).toString(), "RIFF");
    assert.equal(body.subarray(8, 12).toString(), "WAVE");
    const ranged = await page.request.get(BASE + href, { headers: { Range: "bytes=0-99" } });
    assert.equal(ranged.status(), 206);
    const mp3 = await page.request.get(BASE + (await page.getAttribute("[data-testid=download-mp3]", "href")));
    assert.equal(mp3.status(), 200);
    assert.equal(mp3.headers()["content-type"], "audio/mpeg");
    const head = await mp3.body();
    assert.ok(head[0] === 0xff && (head[1] & 0xe0) === 0xe0, "an MPEG audio frame");
  });

  await step(`${vp.name}: share page has Open Graph tags and renders without JavaScript`, async () => {
    const noJs = await browser.newContext({ javaScriptEnabled: false });
    const p = await noJs.newPage();
    await p.goto(songUrl);
    for (const prop of ["og:title", "og:description", "og:image", "og:audio", "og:url"]) {
      const content = await p.getAttribute(`meta[property="${prop}"]`, "content");
      assert.ok(content, `${prop} missing`);
      if (prop === "og:image" || prop === "og:audio") assert.match(content, /^https?:\/\//);
    }
    assert.ok(await p.getAttribute('meta[name="twitter:card"]', "content"));
    assert.ok((await p.textContent("[data-testid=song-title]")).length > 0);
    await p.waitForSelector("[data-testid=player]");
    await p.screenshot({ path: `${OUT}song-nojs-${vp.name}.png`, fullPage: true });
    await noJs.close();
  });

  await step(`${vp.name}: extend this song → a longer song that continues it and links back`, async () => {
    const p = await ctx.newPage();
    await p.goto(songUrl);
    await p.waitForSelector("body[data-hydrated]", { timeout: 30000 });
    const slug = songUrl.split("/s/")[1];
    await p.locator("[data-testid=extend-length]").fill("35");
    await p.click("[data-testid=extend]");
    await p.waitForURL((u) => /^\/s\/[A-Za-z0-9]{12}$/.test(u.pathname) && !u.pathname.endsWith(slug), { timeout: 30000 });
    await p.waitForSelector("[data-testid=player]:is([data-state=paused], [data-state=playing])", { timeout: 120000 });
    assert.equal(await p.getAttribute("[data-testid=extends]", "href"), `/s/${slug}`);
    const dur = await num(p.locator("[data-testid=player]"), "data-duration");
    assert.ok(Math.abs(dur - 35) < 0.5, `the extension lasts ${dur} s`);
    assert.match(await p.textContent("[data-testid=song-title]"), /\(extended\)/);
    await p.screenshot({ path: `${OUT}extended-${vp.name}.png`, fullPage: true });
    await p.close();
  });

  let playlistUrl;
  await step(`${vp.name}: create a playlist, add two songs, reorder, play all`, async () => {
    await page.fill("[data-testid=new-playlist]", `Trip ${vp.name}`);
    await page.click("[data-testid=create-playlist]");
    await page.waitForSelector("[data-testid=created] a");
    playlistUrl = BASE + (await page.getAttribute("[data-testid=created] a", "href"));
    // A second, short song from the REST API with this browser's owner cookie.
    const res = await page.request.post(BASE + "/api/songs", {
      multipart: {
        image: { name: "p.png", mimeType: "image/png", buffer: (await import("node:fs")).readFileSync(PHOTO2) },
        options: JSON.stringify({ mood: "calm", duration: 5 }),
      },
    });
    assert.equal(res.status(), 202);
    const second = await res.json();
    for (let i = 0; i < 600; i++) {
      const s = await (await page.request.get(`${BASE}/api/songs/${second.id}`)).json();
      if (s.status === "ready") break;
      assert.notEqual(s.status, "failed", s.error);
      await page.waitForTimeout(200);
    }
    await page.goto(second.url);
    await page.waitForSelector("body[data-hydrated]");
    await page.selectOption("[data-testid=playlist-select]", { label: `Trip ${vp.name}` });
    await page.click("[data-testid=add-to-playlist]");
    await page.waitForSelector("[data-testid=added]");
    await page.goto(playlistUrl);
    await page.waitForSelector("body[data-hydrated]");
    const slugs = () => page.locator("[data-testid=playlist-song]").evaluateAll((els) => els.map((e) => e.dataset.slug));
    const before = await slugs();
    assert.equal(before.length, 2);
    await page.locator("[data-testid=move-down]").first().click();
    // The list re-renders after the move: wait for it to be back, in the new order (an
    // empty list in between must not count as "changed").
    await page.waitForFunction((first) => {
      const songs = document.querySelectorAll("[data-testid=playlist-song]");
      return songs.length === 2 && songs[0].dataset.slug !== first;
    }, before[0]);
    assert.deepEqual(await slugs(), [before[1], before[0]]);
    await page.screenshot({ path: `${OUT}playlist-${vp.name}.png`, fullPage: true });
    await page.click("[data-testid=play-all]");
    await page.waitForSelector("[data-testid=now-playing][data-index='0'] [data-testid=player][data-state=playing]", { timeout: 30000 });
    // Jump near the end of the first song; play-all must move on to the second.
    const wave = page.locator("[data-testid=waveform]");
    const box = await wave.boundingBox();
    await page.mouse.click(box.x + box.width * 0.97, box.y + box.height / 2);
    await page.waitForSelector("[data-testid=now-playing][data-index='1'] [data-testid=player][data-state=playing]", { timeout: 30000 });
  });

  await step(`${vp.name}: library lists my songs and playlists`, async () => {
    await page.goto(BASE + "/library");
    await page.waitForSelector(".song-card");
    assert.ok((await page.locator(".song-card").count()) >= 2);
    assert.ok(await page.locator(`text=Trip ${vp.name}`).count());
    await page.screenshot({ path: `${OUT}library-${vp.name}.png`, fullPage: true });
  });

  await step(`${vp.name}: another browser (no owner cookie) cannot edit the playlist`, async () => {
    const other = await browser.newContext(vp);
    const p = await other.newPage();
    await p.goto(playlistUrl);
    await p.waitForSelector("[data-testid=playlist][data-owner=false]");
    assert.equal(await p.locator("[data-testid=move-down]").count(), 0);
    assert.equal(await p.locator("[data-testid=rename]").count(), 0);
    const slug = playlistUrl.split("/p/")[1];
    const r = await p.request.post(`${BASE}/api/fn/rename_playlist`, { form: { slug, title: "hijacked" } });
    assert.ok(r.status() >= 400, `rename by a stranger answered ${r.status()}`);
    assert.match(await r.text(), /owner/);
    await p.goto(playlistUrl);
    assert.notEqual(await p.textContent("[data-testid=playlist-title]"), "hijacked");
    await p.goto(BASE + "/p/zzzzzzzzzzzz");
    await p.screenshot({ path: `${OUT}not-found-${vp.name}.png`, fullPage: true });
    await other.close();
  });

  await step(`${vp.name}: a words-only song shows what the words chose`, async () => {
    await page.goto(BASE + "/");
    await page.waitForSelector("body[data-hydrated]", { timeout: 30000 });
    await page.getByRole("button", { name: "Words only" }).click();
    await page.fill("input[name=text]", "lonely saxophone at midnight, no drums, 70 bpm");
    await page.locator("input[name=duration]").fill("5");
    await page.click("[data-testid=make]");
    await page.waitForURL(/\/s\/[A-Za-z0-9]{12}$/, { timeout: 30000 });
    await page.waitForSelector("[data-testid=player][data-state=paused]", { timeout: 120000 });
    await page.reload();
    const row = (what) => page.locator("table.parts tr", { has: page.locator(`td:text-is("${what}")`) });
    await page.waitForSelector("table.parts tr[data-source=words]");
    for (const [what, value] of [["mood", /^melancholic$/], ["genre", /^(jazz|lofi|rnb)$/], ["tempo", /^70 bpm$/],
      ["without", /^drums, brushed-drums, drum-machine$/], ["instruments", /^saxophone/]]) {
      assert.equal(await row(what).getAttribute("data-source"), "words", what);
      assert.match((await row(what).locator("td").nth(1).textContent()).trim(), value, what);
    }
    assert.match(await row("mood").textContent(), /“lonely”/);
    const prompt = await page.textContent("[data-testid=prompt]");
    assert.ok(!/drums|no drums/.test(prompt), `the prompt names what was ruled out: ${prompt}`);
    await page.screenshot({ path: `${OUT}words-${vp.name}.png`, fullPage: true });
  });

  await step(`${vp.name}: nothing was blocked by the Content Security Policy`, async () => {
    assert.deepEqual(cspViolations, []);
  });
  await ctx.close();
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
try {
  for (const vp of VIEWPORTS) {
    try {
      await journey(browser, vp);
    } catch {
      // Reported by step(); go on with the other viewport.
    }
  }
} finally {
  await browser.close();
}
console.log(failures ? `${failures} end-to-end step(s) failed` : "all end-to-end steps passed");
process.exit(failures ? 1 : 0);
