// Drive the Airflow 3 UI's trigger form of one DAG in headless Chromium (the system's chromium).
// Usage: node trigger_form.js <spec.json>
// spec: {base_url, dag_id, sections: {param: section title}, datetimes: {param: field title}, fill: {param: text}, submit: bool, unpause: bool, screenshot: path,
// chromium: path}
// Prints one JSON line: {defaults_triggerable, triggerable, field_errors, response: {status, body} | null,
// toast}: whether Trigger is enabled before and after filling, the form's field errors, what the trigger
// request got and the toast the form showed.
"use strict";
const fs = require("fs");
const { openBrowser } = require("./browser");

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const { page, close } = await openBrowser(spec.chromium, { width: 1400, height: 1000 });
  const result = {
    defaults_triggerable: null, triggerable: null, field_errors: [], response: null, toast: null,
  };
  try {
    await page.goto(`${spec.base_url}/dags/${spec.dag_id}`);
    await page.getByRole("button", { name: "Trigger Dag" }).click();
    const dialog = page.getByRole("dialog");
    // The params are grouped in sections (Data, Tuning, ...), one open at a time: open a field's section
    // before filling it.
    const open = async (name) => {
      const field = dialog.locator(`input[name="element_${name}"]`);
      if (!(await field.isVisible()) && spec.sections && spec.sections[name]) {
        await dialog.getByRole("button", { name: spec.sections[name], exact: true }).click();
      }
      await field.waitFor();
      return field;
    };
    await dialog.getByRole("button", { name: "Data", exact: true }).waitFor();
    const trigger = dialog.getByRole("button", { name: "Trigger", exact: true });
    result.defaults_triggerable = await trigger.isEnabled();

    // Keep a paused DAG paused: the run is recorded (queued) and nothing executes.
    const unpause = dialog.getByRole("checkbox");
    if ((await unpause.count()) > 0 && (await unpause.isChecked()) !== Boolean(spec.unpause)) {
      await dialog.getByText(/^Unpause .* on trigger$/).click();
    }
    for (const [name, text] of Object.entries(spec.fill || {})) {
      if ((spec.datetimes || {})[name]) {
        // A date-time param is a picker: its popover has a Date (YYYY/MM/DD) and a Time (HH:mm) input, in UTC.
        const section = dialog.getByRole("button", { name: spec.sections[name], exact: true });
        const row = dialog.locator('[data-part="root"][role="group"]', {
          has: page.getByText(spec.datetimes[name], { exact: true }),
        });
        if (!(await row.isVisible())) await section.click();
        await row.getByTestId("datetime-input").click();
        const popover = page.locator('[data-scope="popover"][data-part="content"][data-state="open"]').last();
        const iso = new Date(String(text)).toISOString(); // 2026-11-01T00:00:00.000Z
        await popover.getByPlaceholder("YYYY/MM/DD").fill(iso.slice(0, 10).replaceAll("-", "/"));
        await popover.getByPlaceholder("HH:mm").fill(iso.slice(11, 16));
        await page.keyboard.press("Escape");
        continue;
      }
      const field = await open(name);
      await field.fill(String(text));
      await field.blur();
    }
    result.triggerable = await trigger.isEnabled();
    result.field_errors = await dialog.locator('[data-part="error-text"]').allInnerTexts();
    if (result.triggerable && spec.submit !== false) {
      const posted = page.waitForResponse(
        (r) => r.request().method() === "POST" && r.url().endsWith(`/dags/${spec.dag_id}/dagRuns`),
      );
      await trigger.click();
      const response = await posted;
      result.response = { status: response.status(), body: await response.text() };
      const toast = page.getByRole("status").filter({ hasText: /Trigger/ }).first();
      await toast.waitFor();
      result.toast = (await toast.innerText()).trim();
    }
  } finally {
    if (spec.screenshot) await page.screenshot({ path: spec.screenshot }).catch(() => {});
    await close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
