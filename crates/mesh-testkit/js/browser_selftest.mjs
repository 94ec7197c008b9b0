// browser_selftest.mjs — prove ./browser.mjs works, with no dashboard involved: a tiny HTTP server
// on 127.0.0.1 serves pages under the dashboard's strict Content Security Policy, and the checks
// below show that a clean page passes (no problems, no axe violations, a reachable form) and that
// each kind of mistake the dashboard tests look for is caught: an inline <script>, an inline
// style= attribute, an eval, an unlabelled <input>, a console.error and an uncaught exception.
//
// Output: one JSON line per check, {"check": name, "ok": bool, "detail": ...}, then
// "N passed, M failed". Exit 0 only when every check passed; the whole run has a deadline.
//
//   source .test-deps/env.sh && $MESH_TEST_NODE22 crates/mesh-testkit/js/browser_selftest.mjs
//
// The screenshot goes to $MESH_SCREENSHOT_DIR when set, else to a temporary directory that is
// removed afterwards.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { axe, check, launch, shot, summary, tabOrder, watch } from './browser.mjs';

const { values: args } = parseArgs({
  options: {
    timeout: { type: 'string', default: '120' },
  },
});

// ---- the pages ----------------------------------------------------------------------------------
// The dashboard's policy: nothing inline, nothing from elsewhere.
const CSP =
  "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; " +
  "frame-ancestors 'none'";
const layout = (title, body) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<main>
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`;
const PAGES = {
  '/clean': layout(
    'Clean page',
    `<form method="post" action="/clean">
<label for="server-name">Server name</label>
<input id="server-name" name="name" type="text" required>
<label for="transport">Transport</label>
<select id="transport" name="transport"><option>stdio</option><option>http</option></select>
<button type="submit">Add server</button>
</form>`,
  ),
  // The inline script would retitle the page if it ran; the CSP must stop it.
  '/dirty': layout(
    'Dirty page',
    `<script>document.title = 'inline script ran';</script>
<form method="post" action="/dirty">
<input name="q" type="text">
<button type="submit">Search</button>
</form>`,
  ),
  '/inline-style': layout('Inline style', '<p style="color: rebeccapurple">Styled inline.</p>'),
  '/eval': layout('Eval', '<p>Tries eval.</p><script src="/eval.js"></script>'),
  '/noisy': layout('Noisy page', '<p>Logs an error and throws.</p><script src="/noisy.js"></script>'),
};
const ASSETS = {
  '/app.css': ['text/css', 'body { font-family: sans-serif; margin: 2rem; } label { display: block; }\n'],
  '/app.js': ['text/javascript', "document.documentElement.dataset.js = 'ran';\n"],
  // Caught, so only the CSP watch can tell.
  '/eval.js': ['text/javascript', "try { eval('1'); } catch (e) {}\n"],
  '/noisy.js': [
    'text/javascript',
    "console.error('noisy: logged on purpose');\nsetTimeout(() => { throw new Error('noisy: thrown on purpose'); });\n",
  ],
};

function serve() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const html = PAGES[url.pathname];
    const asset = ASSETS[url.pathname];
    if (html) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP });
      res.end(html);
    } else if (asset) {
      res.writeHead(200, { 'content-type': `${asset[0]}; charset=utf-8` });
      res.end(asset[1]);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// ---- the checks ---------------------------------------------------------------------------------
// visit(page, problems, url): load the page afresh and let late console messages arrive.
async function visit(tab, problems, url) {
  problems.length = 0;
  const res = await tab.goto(url, { waitUntil: 'load' });
  await tab.waitForTimeout(300);
  return res;
}

async function main() {
  const server = await serve();
  const base = `http://127.0.0.1:${server.address().port}`;
  const ownDir = process.env.MESH_SCREENSHOT_DIR ? null : mkdtempSync(path.join(os.tmpdir(), 'mesh-browser-selftest-'));
  if (ownDir) process.env.MESH_SCREENSHOT_DIR = ownDir;
  let browser;
  try {
    browser = await launch();
    check('launch', true, `Chromium ${browser.version()}`);
    const tab = await browser.newPage();
    const problems = watch(tab);

    // A clean page: nothing to report, and the harness itself works under the strict CSP.
    const res = await visit(tab, problems, `${base}/clean`);
    check('clean: served with the CSP', res.headers()['content-security-policy'] === CSP, res.status());
    const js = await tab.evaluate(() => document.documentElement.dataset.js);
    check('clean: same-origin script ran, evaluate works under the CSP', js === 'ran', `data-js=${js}`);
    check('clean: no problems', problems.length === 0, problems);
    const cleanAxe = await axe(tab);
    check('clean: no axe violations', cleanAxe.length === 0, cleanAxe);
    check('clean: axe injection tripped no CSP', problems.length === 0, problems);
    await visit(tab, problems, `${base}/clean`); // focus back at the top
    const order = await tabOrder(tab, 3);
    const expected = [
      ['input', 'server-name', 'Server name'],
      ['select', 'transport', 'Transport'],
      ['button', '', 'Add server'],
    ];
    check(
      'clean: Tab reaches the form controls, labelled',
      expected.every(([tag, id, label], i) => order[i]?.tag === tag && order[i].id === id && order[i].label === label),
      order,
    );
    const file = await shot(tab, 'selftest-clean');
    const png = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
    check(
      'clean: full-page screenshot written',
      png.length > 1000 && png.subarray(1, 4).toString() === 'PNG',
      `${file} (${png.length} bytes)`,
    );

    // A dirty page: the inline script is blocked and reported, the unlabelled input found.
    await visit(tab, problems, `${base}/dirty`);
    const title = await tab.title();
    check('dirty: the inline script was blocked', title === 'Dirty page', `title ${JSON.stringify(title)}`);
    check(
      'dirty: CSP violation recorded',
      problems.some((p) => p.kind === 'csp' && /inline script/i.test(p.text)),
      problems,
    );
    const dirtyAxe = await axe(tab);
    check(
      'dirty: axe reports the unlabelled input',
      dirtyAxe.some((v) => v.id === 'label' && v.targets.some((t) => t.includes('input'))),
      dirtyAxe,
    );

    await visit(tab, problems, `${base}/inline-style`);
    check(
      'inline style: CSP violation recorded',
      problems.some((p) => p.kind === 'csp' && /inline style/i.test(p.text)),
      problems,
    );

    await visit(tab, problems, `${base}/eval`);
    check(
      'eval: CSP violation recorded',
      problems.some((p) => p.kind === 'csp' && /eval/.test(p.text) && p.source?.includes('/eval.js')),
      problems,
    );

    await visit(tab, problems, `${base}/noisy`);
    check(
      'noisy: console.error and the uncaught exception recorded',
      problems.some((p) => p.kind === 'console' && p.text.includes('logged on purpose')) &&
        problems.some((p) => p.kind === 'pageerror' && p.text.includes('thrown on purpose')),
      problems,
    );
  } catch (e) {
    check('run', false, `${e.name}: ${e.message}`);
  } finally {
    await browser?.close().catch(() => {});
    server.close();
    if (ownDir) rmSync(ownDir, { recursive: true, force: true });
  }
  return summary();
}

const overall = setTimeout(() => {
  check('run', false, `not finished within ${args.timeout} s`);
  summary();
  process.exit(1);
}, Number(args.timeout) * 1000);
overall.unref();
process.exitCode = await main();
process.exit(process.exitCode);
