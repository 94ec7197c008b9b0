// browser.mjs — the harness of the dashboard's browser tests: Debian's Chromium driven by
// playwright-core, axe-core for accessibility, and a watch on what a page must never do (log an
// error, throw, or trip its own Content Security Policy).
//
// The dashboard serves a strict CSP (no inline scripts or styles, no eval), so nothing here leans
// on the page's cooperation: axe-core goes in through DevTools evaluation (`page.evaluate`), which
// the page's CSP does not govern (V8 allows eval while DevTools evaluates), rather than through a
// <script> tag. CSP violations are caught from the console, where Chromium reports blocked inline
// scripts, inline styles and loads ("Executing inline script violates the following Content
// Security Policy directive ..."), and, for a blocked eval, which Chromium reports only as a
// DevTools issue, from the CDP Audits domain.
//
//   import { launch, watch, axe, shot, tabOrder, check, summary } from './browser.mjs';
//   const browser = await launch();
//   const page = await browser.newPage();
//   const problems = watch(page);
//   await page.goto(url);
//   check('no problems', problems.length === 0, problems);
//   check('axe', (await axe(page)).length === 0, ...);
//   await browser.close();
//   process.exitCode = summary(); // prints the last line, "N passed, M failed"
//
// Output convention (as ../js/stateless_client.mjs and ../py): one JSON line per check,
// {"check": name, "ok": bool, "detail": ...}, then "N passed, M failed" as the last line of stdout;
// the Rust side (mesh_testkit::deps::assert_checks_passed) wants M = 0 and N > 0.
//
// Run it with the test deps' Node 22 after `source .test-deps/env.sh`: playwright-core and
// axe-core are loaded from $MESH_TEST_DEPS/npm (default <repo>/.test-deps/npm), since this file
// lives outside that node_modules, and the browser is $MESH_TEST_CHROMIUM (/usr/bin/chromium).
// ./browser_selftest.mjs proves all of the above against a tiny server of its own.

import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// ---- playwright-core and axe-core, from the test-deps tree ----------------------------------
const here = path.dirname(fileURLToPath(import.meta.url));
const depsDir = process.env.MESH_TEST_DEPS || path.resolve(here, '../../../.test-deps');
const modulesDir = path.join(depsDir, 'npm', 'node_modules');
const pwDir = path.join(modulesDir, 'playwright-core');
const pwPkg = JSON.parse(readFileSync(path.join(pwDir, 'package.json'), 'utf8'));
const pwEntry = pwPkg.exports['.'].import.default ?? pwPkg.exports['.'].import;
const { chromium } = await import(pathToFileURL(path.join(pwDir, pwEntry)).href);
const AXE_PATH = path.join(modulesDir, 'axe-core', 'axe.min.js');
let axeSource; // read on first use

// ---- the browser ------------------------------------------------------------------------------
// Without the background-networking flags Chromium tries to reach Google services (and fails
// noisily on a machine without that access); QUIC and the GPU have no place in a test either.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// launch(): a headless playwright-core Browser on Debian's Chromium.
export async function launch() {
  return chromium.launch({
    executablePath: process.env.MESH_TEST_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

// ---- problems ---------------------------------------------------------------------------------
// A blocked eval (or new Function, or a WebAssembly compile) leaves no console message in
// Chromium (156 at least), only a DevTools issue; blocked inline scripts, inline styles and
// loads come with both, and are taken from the console alone so that each is recorded once.
const SILENT_CSP_VIOLATIONS = new Set(['kEvalViolation', 'kWasmEvalViolation']);

// watch(page): an array that fills with what went wrong on the page from now on, one entry per
// problem: {kind, text, url} with kind
//   'csp'     a Content Security Policy violation: a console message mentioning the policy
//             (whatever its level: report-only violations count too), or a blocked eval,
//   'console' any other console message of type 'error' (a failed load such as a missing
//             /favicon.ico, console.error()),
//   'pageerror' an exception nobody caught,
//   'watch'   the harness could not watch for blocked evals (no CDP session).
// `url` is the page's URL at the time; `source` (when known) is where the message came from.
// Call it once per page (a second call records everything twice); empty the array with
// `problems.length = 0` between steps. The eval watch attaches in the background; it misses
// nothing meanwhile, since Audits.enable replays the issues the page already has.
export function watch(page) {
  const problems = [];
  page
    .context()
    .newCDPSession(page)
    .then(async (cdp) => {
      cdp.on('Audits.issueAdded', ({ issue }) => {
        const d = issue.details?.contentSecurityPolicyIssueDetails; // set for CSP issues only
        if (!SILENT_CSP_VIOLATIONS.has(d?.contentSecurityPolicyViolationType)) return;
        const at = d.sourceCodeLocation;
        const entry = {
          kind: 'csp',
          text: `eval blocked: it violates the Content Security Policy directive '${d.violatedDirective}'`,
          url: page.url(),
        };
        if (at?.url) entry.source = `${at.url}:${at.lineNumber + 1}:${at.columnNumber + 1}`;
        problems.push(entry);
      });
      await cdp.send('Audits.enable');
    })
    .catch((e) => {
      if (!page.isClosed()) problems.push({ kind: 'watch', text: `no CDP session: ${e.message}`, url: page.url() });
    });
  page.on('console', (msg) => {
    const text = msg.text();
    const csp = /Content Security Policy/i.test(text);
    if (!csp && msg.type() !== 'error') return;
    const { url, lineNumber } = msg.location() ?? {};
    const entry = { kind: csp ? 'csp' : 'console', text, url: page.url() };
    if (url) entry.source = `${url}:${(lineNumber ?? 0) + 1}`;
    problems.push(entry);
  });
  page.on('pageerror', (err) => {
    problems.push({ kind: 'pageerror', text: `${err.name}: ${err.message}`, url: page.url() });
  });
  return problems;
}

// ---- accessibility ----------------------------------------------------------------------------
// axe(page, tags): axe-core's WCAG 2.0 A/AA violations on the page as it is now, each
// {id, impact, help, helpUrl, count, targets} with the first few nodes' CSS selectors, so a
// failed check reads on its own. axe is evaluated through DevTools, not added as a <script>: the
// page's CSP allows neither an inline script nor one from elsewhere.
export async function axe(page, tags = ['wcag2a', 'wcag2aa']) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    axeSource ??= readFileSync(AXE_PATH, 'utf8');
    await page.evaluate(axeSource);
  }
  return page.evaluate(async (values) => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values } });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      count: v.nodes.length,
      targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
    }));
  }, tags);
}

// ---- keyboard ---------------------------------------------------------------------------------
// tabOrder(page, n): press Tab n times and return what has focus after each press, as
// {tag, id, name, type, label}; `label` is the accessible name as far as a test needs it
// (aria-labelledby, aria-label, <label>, then title, placeholder or the element's own text).
// It starts from wherever focus is: straight after page.goto, that is the top of the page.
export async function tabOrder(page, n) {
  const order = [];
  for (let i = 0; i < n; i++) {
    await page.keyboard.press('Tab');
    order.push(
      await page.evaluate(() => {
        const el = document.activeElement;
        if (!el || el === document.body) return { tag: 'body', id: '', name: '', type: '', label: '' };
        const text = (node) => (node?.textContent ?? '').replace(/\s+/g, ' ').trim();
        let label = '';
        const labelledBy = el.getAttribute('aria-labelledby');
        if (labelledBy) {
          label = labelledBy
            .split(/\s+/)
            .map((id) => text(document.getElementById(id)))
            .join(' ')
            .trim();
        }
        label ||= el.getAttribute('aria-label')?.trim() ?? '';
        if (!label && el.labels) label = [...el.labels].map(text).join(' ').trim();
        label ||= el.getAttribute('title')?.trim() || el.getAttribute('placeholder')?.trim() || '';
        if (!label && !['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName)) label = text(el);
        return {
          tag: el.tagName.toLowerCase(),
          id: el.id,
          name: el.getAttribute('name') ?? '',
          type: el.getAttribute('type') ?? '',
          label,
        };
      }),
    );
  }
  return order;
}

// ---- screenshots ------------------------------------------------------------------------------
// shot(page, name): a full-page PNG at $MESH_SCREENSHOT_DIR/<name>.png (default
// target/dashboard-screenshots, relative to the working directory); returns its path.
export async function shot(page, name) {
  const dir = process.env.MESH_SCREENSHOT_DIR || 'target/dashboard-screenshots';
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// ---- checks -----------------------------------------------------------------------------------
let passed = 0;
let failed = 0;

// check(name, cond, detail): record and print one check as a JSON line; returns whether it held.
// `detail` may be anything JSON can carry (a problems array, axe's violations).
export function check(name, cond, detail = '') {
  const ok = Boolean(cond);
  ok ? passed++ : failed++;
  console.log(JSON.stringify({ check: name, ok, detail }));
  return ok;
}

// summary(): print "N passed, M failed" (to be the last line of stdout) and return the exit code
// the script should end with: 0 only when every check passed and there was at least one.
export function summary() {
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}
