// dashboard.mjs — the dashboard in a real browser (Debian's Chromium, playwright-core): an admin
// logs in, adds a stdio connection and tests it, builds a virtual MCP of exactly three tools,
// creates a key that the official Python SDK then uses, finds the call in the audit trail,
// verifies the chain, and calls a tool from the playground; a viewer sees no admin controls and
// a forged POST is refused; a POST without the CSRF token is refused. Every page is checked for
// console errors, CSP violations and axe-core (WCAG 2 A/AA) violations, and screenshotted.
//
//   node dashboard.mjs --base URL --email E --password P --viewer-email E --viewer-password P \
//       --everything BIN --python PY --sdk-script list_and_call.py
//
// Output: one JSON line per check, then "N passed, M failed" (see browser.mjs).

import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { launch, watch, axe, shot, tabOrder, check, summary } from './browser.mjs';

const { values: a } = parseArgs({
  options: {
    base: { type: 'string' },
    email: { type: 'string' },
    password: { type: 'string' },
    'viewer-email': { type: 'string' },
    'viewer-password': { type: 'string' },
    everything: { type: 'string' },
    python: { type: 'string' },
    'sdk-script': { type: 'string' },
  },
});
const base = a.base;

const browser = await launch();
try {
  await admin();
  await viewer();
} catch (e) {
  check('the walk-through ran to the end', false, String(e && e.stack || e));
} finally {
  await browser.close();
}
process.exitCode = summary();

// Visits `path`, then checks the page had no console errors or CSP violations, passes axe, and
// keeps a screenshot named `name`.
async function visit(page, problems, path, name) {
  problems.length = 0;
  const resp = await page.goto(base + path);
  await settle(page, problems, name, resp);
}

async function settle(page, problems, name, resp) {
  await page.waitForLoadState('load');
  // After a form or a click there is no response at hand: those pages' header was checked when
  // the same route was visited.
  if (resp) {
    check(`${name}: answered 200`, resp.status() === 200, `${resp.status()} ${page.url()}`);
    const csp = resp.headers()['content-security-policy'] || '';
    check(`${name}: CSP header`, /script-src 'self'/.test(csp), csp);
  }
  const violations = await axe(page);
  check(`${name}: no accessibility violations`, violations.length === 0, violations);
  if (await page.$('a.skip')) {
    // Keyboard: from the top, Tab reaches the skip link first, then the header's controls and the
    // navigation, each with an accessible name.
    const first = await page.evaluate(() =>
      document.querySelector('a[href], button, input:not([type=hidden]), select, textarea') === document.querySelector('a.skip'));
    await page.focus('a.skip');
    const order = await tabOrder(page, 8);
    check(`${name}: keyboard reaches the skip link first, then labelled controls`,
      first && order[0].id === 'org-switch' && order.every((o) => o.tag !== 'body' && o.label), order);
  }
  await shot(page, name);
  check(`${name}: no console errors or CSP violations`, problems.length === 0, [...problems]);
  problems.length = 0;
}

async function login(page, problems, email, password) {
  problems.length = 0;
  await page.goto(base + '/');
  check('an anonymous visit is sent to the login page', new URL(page.url()).pathname === '/login', page.url());
  await settle(page, problems, 'login', null);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('#login button[type=submit]')]);
  check(`${email} logs in and lands on the overview`, (await page.textContent('h1')) === 'Overview', page.url());
}

async function admin() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('dialog', (d) => d.accept());
  const problems = watch(page);

  // Keyboard: the login form is reachable with Tab, each control labelled.
  await page.goto(base + '/login');
  const order = await tabOrder(page, 4);
  check('login: Tab reaches e-mail, password and the button, each labelled',
    ['email', 'password'].every((id) => order.some((o) => o.id === id && o.label)) && order.some((o) => o.tag === 'button'),
    order);

  await login(page, problems, a.email, a.password);
  await settle(page, problems, 'overview', null);

  // Add a stdio connection (server-everything) and test it.
  await visit(page, problems, '/connections/new', 'connection-new');
  await page.selectOption('#kind', 'command');
  await page.fill('#slug', 'everything');
  await page.fill('#title', 'Everything');
  await page.fill('#command', a.everything);
  await page.fill('#args', 'stdio');
  await Promise.all([page.waitForNavigation(), page.click('#create-connection')]);
  check('the connection is added', new URL(page.url()).pathname === '/connections/everything'
    && /added/.test(await page.textContent('.flash.ok')), page.url());
  await Promise.all([page.waitForNavigation(), page.click('form.inline:has(input[value=test]) button')]);
  const tested = await page.textContent('.flash');
  check('the connection test passes', /Test passed/.test(tested) && /tools/.test(tested), tested);
  await settle(page, problems, 'connection', null);
  const toolNames = await page.$$eval('#tools summary code', (els) => els.map((e) => e.textContent));
  check('the connection page lists its tools with schemas', toolNames.includes('echo') && (await page.$$('#tools pre.json')).length === toolNames.length, toolNames);
  await page.click('details:has(#edit-connection) summary');
  await page.fill('#e-title', 'Everything server');
  await Promise.all([page.waitForNavigation(), page.click('#edit-connection button[type=submit]')]);
  check('the connection is edited', /Connection saved/.test(await page.textContent('.flash')) && (await page.textContent('h1')) === 'Everything server',
    await page.textContent('main'));
  await visit(page, problems, '/connections', 'connections');

  // A virtual MCP with exactly three chosen tools; a rename that collides is caught live.
  await visit(page, problems, '/gateways/new', 'gateway-new');
  await page.check('#pick input[name=member][value=everything]');
  await Promise.all([page.waitForNavigation(), page.click('#pick-tools')]);
  const offered = await page.$$eval('input[name="tool:everything"]', (els) => els.map((e) => e.value));
  const chosen = ['echo', ...offered.filter((n) => n !== 'echo').slice(0, 2)];
  check('the editor offers the connection\'s tools', offered.length >= 3 && offered.includes('echo'), offered);
  await page.fill('#gw-slug', 'trio');
  for (const t of chosen) await page.check(`input[name="tool:everything"][value="${t}"]`);
  await page.fill('#renames-everything', `echo=${chosen[1]}`);
  await page.locator('#renames-everything').dispatchEvent('change');
  await page.waitForSelector('#check #collision', { timeout: 10000 }).catch(() => null);
  const live = await page.textContent('#check');
  check('a colliding rename is shown before saving, live', /collid|both|twice|same name/i.test(live), live);
  await page.fill('#renames-everything', '');
  await page.locator('#renames-everything').dispatchEvent('change');
  await page.waitForSelector('#check .flash.ok', { timeout: 10000 }).catch(() => null);
  check('without it the names are fine', /No name collisions/.test(await page.textContent('#check')), await page.textContent('#check'));
  await settle(page, problems, 'gateway-editor', null);
  await Promise.all([page.waitForNavigation(), page.click('#save-gateway')]);
  check('the virtual MCP is saved', new URL(page.url()).pathname === '/gateways/trio', page.url());
  const endpoint = (await page.textContent('#endpoint')).trim();
  check('its endpoint URL is shown', endpoint === `${base}/mcp/gateway/trio`, endpoint);
  const configs = await page.$$eval('details.config summary', (els) => els.map((e) => e.textContent));
  check('ready-to-paste client configurations are shown', ['Claude Code', 'Claude Desktop', 'Cursor', 'VS Code'].every((c) => configs.some((s) => s.includes(c))), configs);
  await settle(page, problems, 'gateway', null);
  await visit(page, problems, '/gateways', 'gateways');

  // A key, shown once.
  await visit(page, problems, '/keys', 'keys');
  await page.fill('#k-name', 'sdk');
  await Promise.all([page.waitForNavigation(), page.click('#create-key')]);
  const key = (await page.textContent('#new-key-value')).trim();
  check('a key is created and shown once', /^mesh_/.test(key), key.slice(0, 8));
  await page.goto(base + '/keys');
  check('coming back does not show it again', (await page.$('#new-key-value')) === null && !(await page.content()).includes(key), '');

  // The official Python SDK with that key sees exactly the three tools and calls one.
  const out = JSON.parse(execFileSync(a.python, [a['sdk-script'], '--url', endpoint, '--key', key,
    '--tool', 'everything_echo', '--args', JSON.stringify({ message: 'through the dashboard' })], { encoding: 'utf8', timeout: 90000 }));
  const want = chosen.map((t) => `everything_${t}`).sort();
  check('the Python SDK lists exactly the three tools', JSON.stringify([...out.tools].sort()) === JSON.stringify(want), out.tools);
  check('and calls one', JSON.stringify(out.result.content).includes('through the dashboard'), out.result);

  // The audit page shows the call; verification says intact.
  await visit(page, problems, '/audit?route=trio&name=everything_echo', 'audit');
  const rows = await page.$$eval('#audit-rows tr.row', (trs) => trs.map((t) => t.textContent));
  check('the audit page shows the call', rows.some((r) => r.includes('tools/call') && r.includes('everything_echo') && r.includes('ok')), rows);
  await page.click('#audit-rows details summary');
  check('a row opens to its detail with the arguments', /through the dashboard/.test(await page.textContent('#audit-rows tr.detail')), '');
  await Promise.all([page.waitForNavigation(), page.click('#verify')]);
  const verified = await page.textContent('.flash');
  check('verification says intact', /intact/.test(verified), verified);
  await visit(page, problems, '/audit?routeKind=dashboard', 'audit-dashboard');
  const exported = await page.request.get(base + '/audit/export?route=trio');
  const lines = (await exported.text()).trim().split('\n').map((l) => JSON.parse(l));
  check('export gives the rows as JSON Lines', exported.ok() && lines.some((l) => l.name === 'everything_echo'), lines.length);

  // The playground calls a tool and shows its result.
  await visit(page, problems, '/playground?route=gateway/trio&tool=everything_echo', 'playground');
  await page.fill('#arg-message', 'from the playground');
  await Promise.all([page.waitForNavigation(), page.click('#call-tool')]);
  const result = await page.textContent('#result');
  check('the playground shows the tool\'s result', /from the playground/.test(result), result);
  await settle(page, problems, 'playground-result', null);

  // The strategy is set in the editor: smart, and the SDK then lists the three meta-tools (a tool
  // called by its name still answers).
  await visit(page, problems, '/gateways/new?edit=trio', 'gateway-edit');
  check('the editor shows the strategy, passthrough by default', (await page.$eval('#gw-strategy', (s) => s.value)) === 'passthrough', '');
  await page.selectOption('#gw-strategy', 'smart');
  // Picking the connections again keeps what the editor holds.
  await Promise.all([page.waitForNavigation(), page.click('#pick-tools')]);
  check('a new pick of connections keeps the chosen strategy', (await page.$eval('#gw-strategy', (s) => s.value)) === 'smart', '');
  await Promise.all([page.waitForNavigation(), page.click('#save-gateway')]);
  check('the strategy is saved and shown', (await page.textContent('#strategy')).trim() === 'smart', await page.textContent('main'));
  const smart = JSON.parse(execFileSync(a.python, [a['sdk-script'], '--url', endpoint, '--key', key,
    '--tool', 'everything_echo', '--args', JSON.stringify({ message: 'still there' })], { encoding: 'utf8', timeout: 90000 }));
  check('the Python SDK then lists the meta-tools', JSON.stringify(smart.tools) === JSON.stringify(['search_tools', 'describe_tools', 'call_tool']), smart.tools);
  check('and a tool called by name still answers', JSON.stringify(smart.result.content).includes('still there'), smart.result);
  await visit(page, problems, '/gateways/new?edit=trio', 'gateway-edit-smart');
  check('editing again keeps it', (await page.$eval('#gw-strategy', (s) => s.value)) === 'smart', '');

  for (const [path, name] of [['/members', 'members'], ['/roles', 'roles'], ['/roles?preview=member', 'role-preview'],
    ['/oauth', 'oauth'], ['/limits', 'limits'], ['/settings', 'settings'], ['/', 'overview-after']]) {
    await visit(page, problems, path, name);
  }
  const calls = await page.$$eval('figure.chart rect', (r) => r.length);
  check('the overview charts the calls', calls > 0, calls);

  // A POST without the CSRF token is refused, and changes nothing.
  const forged = await page.request.post(base + '/connections', { form: { kind: 'http', slug: 'nocsrf', url: 'http://127.0.0.1:9/mcp' }, maxRedirects: 0 });
  check('a POST without the CSRF token is refused', forged.status() === 403, forged.status());
  await visit(page, problems, '/connections', 'connections-after');
  check('and nothing was created', !(await page.content()).includes('nocsrf'), '');

  // Logout ends the session.
  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
  await page.goto(base + '/keys');
  check('after logout the pages need a login again', new URL(page.url()).pathname === '/login', page.url());
  await context.close();
}

async function viewer() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = watch(page);
  await login(page, problems, a['viewer-email'], a['viewer-password']);
  await visit(page, problems, '/connections', 'viewer-connections');
  check('a viewer sees no add-connection control', (await page.$('#add-connection')) === null, '');
  await visit(page, problems, '/connections/everything', 'viewer-connection');
  check('nor test, disable or delete buttons', (await page.$$('form.inline button')).length === 0, '');
  await visit(page, problems, '/gateways', 'viewer-gateways');
  check('nor create-a-virtual-MCP', (await page.$('#add-gateway')) === null, '');
  await visit(page, problems, '/members', 'viewer-members');
  check('nor the invite form', (await page.$('#invite')) === null, '');
  // A forged POST with the viewer's own valid session and token: the services refuse it.
  const csrf = await page.getAttribute('input[name=csrf]', 'value');
  const org = await page.$eval('#org-switch', (s) => s.value);
  const forged = await page.request.post(base + '/connections', { form: { csrf, _org: org, kind: 'http', slug: 'forged', url: 'http://127.0.0.1:9/mcp' } });
  check('a viewer\'s forged POST is refused', /permission denied/i.test(await forged.text()), (await forged.text()).slice(0, 300));
  const deleted = await page.request.post(base + '/connections/everything', { form: { csrf, _org: org, action: 'delete' } });
  check('so is deleting a connection', /permission denied/i.test(await deleted.text()), '');
  await visit(page, problems, '/connections', 'viewer-connections-after');
  const content = await page.content();
  check('and nothing changed', !content.includes('forged') && content.includes('everything'), '');
  await context.close();
}
