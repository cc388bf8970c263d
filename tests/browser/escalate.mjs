// Drives Debian's chromium (never a downloaded browser) through
// examples/freshdesk-escalate.user.js on a local page shaped like
// Freshdesk's agent ticket view, against a real `rp-devops serve`.
// Started by tests/userscript_browser.rs, which runs the fakes and serve and
// checks GitLab afterwards. Prints one JSON line with what it saw; exits 1
// on the first failed expectation.
//
// Environment: RP_SERVE_URL, RP_TOKEN, PAGE_PORT, DOWN_URL (where nothing
// listens), SCREENSHOT_DIR, USERSCRIPT (path), CHROMIUM (default
// /usr/bin/chromium).

import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const SERVE_URL = env('RP_SERVE_URL');
const TOKEN = env('RP_TOKEN');
const PAGE_PORT = Number(env('PAGE_PORT'));
const DOWN_URL = env('DOWN_URL');
const SCREENSHOT_DIR = env('SCREENSHOT_DIR');
const USERSCRIPT = readFileSync(env('USERSCRIPT'), 'utf8');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const TICKETS = {
  20: { subject: 'Backups fail at night', requester: 'Ada Requester', body: 'Backups stop at night since 5.2.' },
  21: { subject: 'License key rejected', requester: 'Bob Admin', body: 'The new key is refused after the update.' },
};

// A single-page app like Freshdesk's: /a/tickets/<id> renders a ticket;
// links between tickets use pushState, never a page load.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Freshdesk</title>
<style>
  body { margin: 0; font: 14px/1.4 -apple-system, 'Segoe UI', sans-serif; background: #f5f7f9; color: #12344d; }
  header { background: #12344d; color: #fff; padding: 10px 16px; font-weight: 600; }
  nav { float: left; width: 200px; padding: 16px; }
  nav a { display: block; margin: 4px 0; color: #2c5cc5; }
  main { margin-left: 232px; padding: 16px; }
  .ticket { background: #fff; border: 1px solid #ebeff3; border-radius: 4px; padding: 16px; max-width: 640px; }
  .ticket h2 { margin-top: 0; }
  .meta { color: #6f7c87; }
</style></head>
<body>
<header>Freshdesk · Tickets</header>
<nav>
  <a href="/a/tickets/20" data-spa>#20 Backups fail at night</a>
  <a href="/a/tickets/21" data-spa>#21 License key rejected</a>
</nav>
<main id="app"></main>
<script>
  const tickets = ${JSON.stringify(TICKETS)};
  function render() {
    const m = /^\\/a\\/tickets\\/(\\d+)/.exec(location.pathname);
    const app = document.getElementById('app');
    app.replaceChildren();
    if (!m || !tickets[m[1]]) { app.textContent = 'No ticket'; return; }
    const t = tickets[m[1]];
    const card = document.createElement('div');
    card.className = 'ticket';
    card.innerHTML = '<h2></h2><p class="meta"></p><p class="body"></p>';
    card.querySelector('h2').textContent = t.subject + ' #' + m[1];
    card.querySelector('.meta').textContent = 'Requested by ' + t.requester + ' · Open · High';
    card.querySelector('.body').textContent = t.body;
    app.append(card);
  }
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[data-spa]');
    if (!a) return;
    e.preventDefault();
    history.pushState({}, '', a.getAttribute('href'));
    render();
  });
  window.addEventListener('popstate', render);
  render();
</script>
</body></html>`;

// Tampermonkey's API, as far as the userscript uses it: storage kept in
// localStorage, requests through fetch (so the browser's CORS rules, and
// serve's preflight, apply for real).
const SHIM = `
(() => {
  const key = (name) => 'gm:' + name;
  window.GM_getValue = (name, fallback) => {
    const raw = localStorage.getItem(key(name));
    return raw === null ? fallback : JSON.parse(raw);
  };
  window.GM_setValue = (name, value) => localStorage.setItem(key(name), JSON.stringify(value));
  window.GM_registerMenuCommand = () => {};
  window.__gmRequests = 0;
  window.GM_xmlhttpRequest = (details) => {
    window.__gmRequests += 1;
    fetch(details.url, { method: details.method, headers: details.headers, body: details.data })
      .then(async (response) => details.onload({ status: response.status, responseText: await response.text() }))
      .catch((error) => details.onerror({ error: String(error) }));
  };
})();
`;

function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

function expect(condition, message) {
  if (!condition) fail(message);
}

const server = http.createServer((request, response) => {
  if (request.url.startsWith('/a/')) {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(PAGE);
  } else {
    response.writeHead(404);
    response.end('not found');
  }
});
await new Promise((resolve) => server.listen(PAGE_PORT, '127.0.0.1', resolve));
const PAGE_URL = `http://127.0.0.1:${PAGE_PORT}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox',
    '--headless',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
const seen = {};
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 420 } });
  await context.addInitScript(
    `${SHIM}\nlocalStorage.getItem('gm:endpoint') || localStorage.setItem('gm:endpoint', ${JSON.stringify(JSON.stringify(SERVE_URL))});\n` +
      // @run-at document-idle: after the page has rendered.
      `window.addEventListener('DOMContentLoaded', () => {\n${USERSCRIPT}\n});`
  );
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.type());
    if (dialog.type() === 'prompt') await dialog.accept(TOKEN);
    else await dialog.accept();
  });
  const button = page.locator('#rp-devops-escalate button');
  const status = page.locator('#rp-devops-escalate .rp-devops-escalate-status');
  const link = page.locator('#rp-devops-escalate a.rp-devops-issue-link');

  // 1. The button on the ticket view, once.
  await page.goto(`${PAGE_URL}/a/tickets/20`);
  await button.waitFor();
  expect((await page.locator('#rp-devops-escalate').count()) === 1, 'one button on ticket 20');
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'escalate-button.png') });

  // 2. Click → confirm → token (asked once) → the created issue's link.
  await button.click();
  await link.waitFor({ timeout: 60000 });
  seen.first = { text: await status.innerText(), href: await link.getAttribute('href') };
  expect(/^Created issue #\d+$/.test(seen.first.text), `first click says created: ${seen.first.text}`);
  expect(/\/-\/issues\/\d+$/.test(seen.first.href), `link to the issue: ${seen.first.href}`);
  expect(JSON.stringify(dialogs) === '["confirm","prompt"]', `confirm then token prompt: ${dialogs}`);
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'escalate-result.png') });

  // 3. Navigation inside the app to another ticket: still exactly one
  //    button, for the new ticket, with no result from the previous one.
  await page.click('nav a[href="/a/tickets/21"]');
  await page.waitForFunction(() => document.getElementById('rp-devops-escalate')?.dataset.ticket === '21');
  await page.waitForTimeout(700); // past the userscript's own check interval
  seen.buttonsOn21 = await page.locator('#rp-devops-escalate button').count();
  seen.containersOn21 = await page.locator('#rp-devops-escalate').count();
  expect(seen.buttonsOn21 === 1 && seen.containersOn21 === 1, `one button on ticket 21: ${seen.buttonsOn21}`);
  expect((await status.innerText()) === '', 'the status was reset on ticket 21');

  // 4. Back to ticket 20 (popstate) and click again: the existing issue.
  await page.goBack();
  await page.waitForFunction(() => document.getElementById('rp-devops-escalate')?.dataset.ticket === '20');
  expect((await page.locator('#rp-devops-escalate').count()) === 1, 'one button back on ticket 20');
  dialogs.length = 0;
  await button.click();
  await link.waitFor({ timeout: 60000 });
  seen.second = { text: await status.innerText(), href: await link.getAttribute('href') };
  expect(seen.second.href === seen.first.href, `same issue: ${seen.second.href} vs ${seen.first.href}`);
  expect(seen.second.text.startsWith('Already escalated'), `second click says existing: ${seen.second.text}`);
  expect(JSON.stringify(dialogs) === '["confirm"]', `token not asked again: ${dialogs}`);

  // 5. A cancelled confirmation sends nothing.
  const before = await page.evaluate(() => window.__gmRequests);
  page.removeAllListeners('dialog');
  page.once('dialog', (dialog) => dialog.dismiss());
  await button.click();
  await page.waitForTimeout(300);
  expect((await page.evaluate(() => window.__gmRequests)) === before, 'cancel sends nothing');
  page.on('dialog', (dialog) => dialog.accept());

  // 6. The endpoint down: a readable error on the page.
  await page.evaluate((url) => localStorage.setItem('gm:endpoint', JSON.stringify(url)), DOWN_URL);
  await page.click('nav a[href="/a/tickets/21"]');
  await page.waitForFunction(() => document.getElementById('rp-devops-escalate')?.dataset.ticket === '21');
  await button.click();
  await page.waitForFunction(() =>
    document.querySelector('#rp-devops-escalate .rp-devops-escalate-status')?.textContent.startsWith('Could not reach'));
  seen.down = await status.innerText();
  expect(seen.down.includes(DOWN_URL), `the error names the address: ${seen.down}`);
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'escalate-error.png') });
  console.log(JSON.stringify(seen));
} catch (error) {
  fail(error && error.stack ? error.stack : String(error));
} finally {
  await browser.close();
  server.close();
}
