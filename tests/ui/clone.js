// Clone a KFP run in the local UI, as a user does, in headless Chromium.
// Usage: node clone.js <spec.json>
// spec: {chromium: path, url: the KFP UI's clone route (#/runs/new?cloneFromRun=<id>), token: the runtime's
// token for the login page, params: {name: new value}}
// Prints one JSON line: {login: whether the login page was shown, form: the clone form's title,
// url: the page the submitted form led to, title, text}.
"use strict";
const { runDriver, TIMEOUT_MS } = require("./browser");

runDriver({ width: 1200, height: 900 }, async (page, spec) => {
  const out = { login: false };
  await page.goto(spec.url);
  await page.waitForURL((u) => !u.hash, { timeout: TIMEOUT_MS });
  await page.locator("h1").waitFor();
  if ((await page.locator("h1").innerText()) === "Log in") {
    out.login = true;
    await page.locator("input[name=token]").fill(spec.token);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL((u) => u.pathname.includes("/runs/clone/"), { timeout: TIMEOUT_MS });
  }
  out.form = await page.locator("h1").innerText();
  for (const [name, value] of Object.entries(spec.params)) {
    await page.locator(`#p-${name}`).fill(String(value));
  }
  await page.getByRole("button", { name: "Start the run" }).click();
  await page.waitForURL((u) => u.pathname.includes("/runs/details/"), { timeout: TIMEOUT_MS });
  await page.locator("h1").waitFor();
  out.url = page.url();
  out.title = await page.locator("h1").innerText();
  out.text = (await page.locator("body").innerText()).slice(0, 20000);
  return out;
});
