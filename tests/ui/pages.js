// Open pages of the local runtime's UI in headless Chromium (the system's chromium) and report what shows.
// Usage: node pages.js <spec.json>
// spec: {chromium: path, pages: [{name, url, screenshot, follow_log: the text of the log link to follow}]}
// Prints one JSON line: {<name>: {url (after the KFP UI's hash route forwarded), title, text, nodes:
// [{task, state}], points, iframes: [text of each rendered visualization], log: text of the first log
// link followed}}.
"use strict";
const { runDriver, TIMEOUT_MS } = require("./browser");

async function visit(page, spec) {
  await page.goto(spec.url);
  if (spec.url.includes("#")) {
    await page.waitForURL((u) => !u.hash, { timeout: TIMEOUT_MS });
  }
  await page.locator("h1").waitFor();
  const out = {
    url: page.url(),
    title: await page.locator("h1").innerText(),
    text: (await page.locator("body").innerText()).slice(0, 20000),
    nodes: await page.locator("svg.graph g.node").evaluateAll((els) =>
      els.map((e) => ({ task: e.dataset.task, state: e.dataset.state }))),
    points: await page.locator("svg.objective circle.point").count(),
    iframes: [],
    log: null,
  };
  for (const frame of page.frames().slice(1)) {
    await frame.waitForLoadState();
    out.iframes.push(await frame.content());
  }
  if (spec.screenshot) {
    await page.screenshot({ path: spec.screenshot, fullPage: true });
  }
  if (spec.follow_log) {
    const link = page.getByRole("link", { name: spec.follow_log, exact: true }).first();
    await link.click();
    await page.locator("pre.log").waitFor();
    out.log = await page.locator("pre.log").innerText();
  }
  return out;
}

runDriver({ width: 1300, height: 900 }, async (page, spec) => {
  const result = {};
  for (const one of spec.pages) {
    result[one.name] = await visit(page, one);
  }
  return result;
});
