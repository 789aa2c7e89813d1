// Headless Chromium (the system's chromium) for the UI test drivers: a fresh profile, one page.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const TIMEOUT_MS = 45000; // generous: other test suites share the 2 cores

// Returns {page, close}: close() ends the browser and removes its profile.
async function openBrowser(executablePath, viewport) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "kfb-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: executablePath || "/usr/bin/chromium",
    headless: true,
    viewport,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  context.setDefaultTimeout(TIMEOUT_MS);
  const page = context.pages()[0] || (await context.newPage());
  const close = async () => {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { page, close };
}

// A driver's whole run: read the spec (argv[2]), open the browser, `drive(page, spec)`, close it, print
// what drive returned as one JSON line; any error goes to stderr with exit code 1.
function runDriver(viewport, drive) {
  (async () => {
    const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
    const { page, close } = await openBrowser(spec.chromium, viewport);
    let result;
    try {
      result = await drive(page, spec);
    } finally {
      await close();
    }
    console.log(JSON.stringify(result));
  })().catch((err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(1);
  });
}

module.exports = { openBrowser, runDriver, TIMEOUT_MS };
