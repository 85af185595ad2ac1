// Drives Debian's chromium (playwright-core, no downloaded browser) through
// the tollgate dashboard for cmd/server's TestDashboardInChromium:
//
//   node driver.mjs URL ADMINKEY OUTDIR
//
// It opens URL/ui, signs in with ADMINKEY, waits for the figures, and
// writes OUTDIR/dashboard.png and prints one JSON object on stdout: what
// the page shows (read from its data-testid attributes) and every console
// error, page error and failed request seen on the way.
import { chromium } from 'playwright-core';
import path from 'node:path';
import fs from 'node:fs';

const [base, adminKey, outDir] = process.argv.slice(2);
if (!base || !adminKey || !outDir) {
  console.error('usage: node driver.mjs URL ADMINKEY OUTDIR');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const userDataDir = fs.mkdtempSync(path.join(outDir, 'profile-'));

const out = { consoleErrors: [], pageErrors: [], failedRequests: [], badResponses: [], cspViolations: [] };
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1440, height: 900 },
  deviceScaleFactor: 1,
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') out.consoleErrors.push(m.type() + ': ' + m.text());
  });
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('requestfailed', (r) => out.failedRequests.push(r.url() + ': ' + (r.failure() && r.failure().errorText)));
  page.on('response', (r) => {
    if (r.status() >= 400) out.badResponses.push(r.status() + ' ' + r.url());
  });
  // An injected script would run here if the page rendered user input as
  // HTML: the test's key name tries to set this.
  await page.addInitScript(() => {
    window.__xss = 0;
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp = (window.__csp || []).concat(e.violatedDirective + ' ' + e.blockedURI);
    });
  });

  const resp = await page.goto(base + '/ui', { waitUntil: 'load' });
  out.status = resp.status();
  out.csp = resp.headers()['content-security-policy'] || '';
  await page.fill('[data-testid=admin-key]', adminKey);
  await page.click('[data-testid=sign-in]');
  await page.waitForSelector('#app[data-state=ready]', { timeout: 20000 });
  // Use the controls once each (errors they raise are recorded above):
  // split the spend chart by model and provider, then back by key, and
  // switch the range to 30 days (the figures read below are that range's).
  for (const dim of ['model', 'provider', 'key']) await page.click('#spend-dim button[data-dim=' + dim + ']');
  await page.selectOption('[data-testid=range]', '30');
  await page.waitForSelector('#app[data-state=ready]', { timeout: 20000 });
  // Let the browser paint the SVG before the screenshot.
  await page.waitForTimeout(200);

  Object.assign(out, await page.evaluate(() => {
    const money = (root, testid) => {
      const e = root.querySelector('[data-testid=' + testid + ']');
      return e ? e.dataset.usd : null;
    };
    const table = (testid) => {
      const rows = {};
      for (const tr of document.querySelectorAll('[data-testid=' + testid + '] [data-testid=group-row]')) {
        rows[tr.dataset.group] = { spend: money(tr, 'spend'), saved: money(tr, 'saved') };
      }
      return rows;
    };
    const q = (s) => document.querySelector(s);
    return {
      from: q('[data-testid=range-from]').textContent,
      totals: { spend: q('[data-testid=total-spend]').dataset.usd, saved: q('[data-testid=total-saved]').dataset.usd,
        requests: q('[data-testid=total-requests]').dataset.value },
      byKey: table('by-key'),
      byModel: table('by-model'),
      byProvider: table('by-provider'),
      keyNames: [...document.querySelectorAll('[data-testid=key-name]')].map((e) => e.textContent),
      audit: [...document.querySelectorAll('[data-testid=audit-row]')].map((e) => ({ action: e.dataset.action, target: e.dataset.target })),
      budgets: [...document.querySelectorAll('[data-testid=budget-row]')].map((e) => ({
        key: e.dataset.key, period: e.dataset.period, spent: e.querySelector('[data-testid=budget-spent]').dataset.usd,
        projection: e.querySelector('[data-testid=budget-projection]').textContent })),
      breakers: [...document.querySelectorAll('[data-testid=breaker-row]')].map((e) => e.dataset.deployment),
      guards: [...document.querySelectorAll('[data-testid=guard-row]')].map((e) => ({
        name: e.querySelector('[data-testid=guard-name]').textContent, request: e.querySelector('[data-testid=guard-request]').textContent,
        answer: e.querySelector('[data-testid=guard-answer]').textContent, blocked: e.querySelector('[data-testid=guard-blocked]').textContent })),
      hitRate: q('[data-testid=hit-rate]').textContent,
      refusals: q('[data-testid=refusals]').textContent,
      charts: document.querySelectorAll('.chart svg rect').length,
      injectedElements: document.querySelectorAll('main img, main script, main iframe').length,
      xss: window.__xss,
      cspViolations: window.__csp || [],
    };
  }));
  const shot = path.join(outDir, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  out.screenshot = shot;
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
