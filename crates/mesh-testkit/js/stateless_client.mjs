// stateless_client.mjs — drive a server through the mesh with the official TypeScript SDK v2's
// stateless (2026-07-28) client and report per check.
//
// `@modelcontextprotocol/client` (pinned by scripts/test-deps) defaults to the legacy handshake;
// `versionNegotiation: { mode: 'auto' }` makes it probe with `server/discover` and speak the
// stateless revision when the server answers it. Every request then carries its own `_meta`
// envelope, and a server's questions (sampling, elicitation, roots) come back as input-required
// results that the SDK answers through the handlers below and retries. The checks name npm
// `server-everything`'s tools, a server of the session-based revision: through the mesh, the two
// revisions meet. The Python SDK's counterpart is ../py/stateless_client.py.
//
// Output: one JSON line per check, {"check": name, "ok": bool, "detail": "..."}, then
// "N passed, M failed". Exit 0 only when every check passed. Every check has its own deadline,
// the whole run another. When a check fails, the HTTP exchanges it caused go to stderr (with
// MESH_TS_WIRE=1, every exchange does): that is the evidence to read when the mesh misbehaves.
//
//   node stateless_client.mjs --url http://127.0.0.1:PORT/mcp/everything --key KEY
//
// Run it with the test deps' Node 22; the SDK is loaded from $MESH_TEST_DEPS/npm (default
// <repo>/.test-deps/npm), since this file lives outside that node_modules.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    key: { type: 'string', default: '' },
    timeout: { type: 'string', default: '240' },
  },
});
if (!args.url) {
  console.error('usage: stateless_client.mjs --url URL [--key KEY] [--timeout SECONDS]');
  process.exit(2);
}

// ---- the SDK, from the test-deps tree -----------------------------------------------------
// The package is ESM-first: follow its `exports["."].import` rather than require.resolve, which
// would pick the CommonJS build.
const here = path.dirname(fileURLToPath(import.meta.url));
const depsDir = process.env.MESH_TEST_DEPS || path.resolve(here, '../../../.test-deps');
const pkgDir = path.join(depsDir, 'npm', 'node_modules', '@modelcontextprotocol', 'client');
const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
const entry = pkg.exports['.'].import.default ?? pkg.exports['.'].import;
const { Client, StreamableHTTPClientTransport } = await import(pathToFileURL(path.join(pkgDir, entry)).href);

// ---- the client's side of the server's questions ------------------------------------------
const RUN_ID = randomUUID().slice(0, 8);
const SAMPLING_MARKER = `mesh-sampling-${RUN_ID}`;
const ELICITED_NAME = `Mesh Stateless ${RUN_ID}`;
const seen = { sampling: 0, elicitation: 0, roots: 0 };

// ---- wire capture ---------------------------------------------------------------------------
// The transport's fetch, wrapped: each exchange is kept (bodies cut at 4 KB) so a failing check
// can show what the SDK sent and what came back. Response bodies are read from a clone in the
// background; an SSE stream's text is complete once the stream ends.
const wire = [];
const WIRE_ALL = process.env.MESH_TS_WIRE === '1';
const cut = (s) => (s.length > 4096 ? `${s.slice(0, 4096)}…(${s.length} chars)` : s);
async function tracedFetch(input, init = {}) {
  const entry = { method: init.method ?? 'GET', url: String(input), sent: {}, body: '', status: 0, got: {}, reply: '' };
  entry.sent = Object.fromEntries(new Headers(init.headers).entries());
  if (entry.sent.authorization) entry.sent.authorization = 'Bearer ***';
  entry.body = typeof init.body === 'string' ? cut(init.body) : init.body ? '<binary>' : '';
  wire.push(entry);
  try {
    const res = await fetch(input, init);
    entry.status = res.status;
    entry.got = Object.fromEntries(res.headers.entries());
    res
      .clone()
      .text()
      .then((t) => (entry.reply = cut(t)))
      .catch((e) => (entry.reply = `<body unread: ${e.message}>`));
    return res;
  } catch (e) {
    entry.reply = `<fetch failed: ${e.message}>`;
    throw e;
  }
}
function dumpWire(from, label) {
  for (const e of wire.slice(from)) {
    console.error(`[wire ${label}] > ${e.method} ${e.url} ${JSON.stringify(e.sent)}\n${e.body}`);
    console.error(`[wire ${label}] < ${e.status} ${JSON.stringify(e.got)}\n${e.reply}`);
  }
}

// ---- checks -----------------------------------------------------------------------------------
class CheckFailed extends Error {}
function expect(cond, detail) {
  if (!cond) throw new CheckFailed(detail);
}
const textOf = (r) =>
  (r.content ?? [])
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('\n');

const CHECKS = [
  [
    'version',
    async (c) => {
      const v = c.getNegotiatedProtocolVersion();
      expect(v === '2026-07-28', `negotiated ${v}, not the stateless revision`);
      return `protocol ${v}, server ${JSON.stringify(c.getServerVersion())}`;
    },
  ],
  [
    'tools',
    async (c) => {
      const names = (await c.listTools()).tools.map((t) => t.name);
      for (const n of ['echo', 'trigger-sampling-request', 'trigger-elicitation-request', 'get-roots-list']) {
        expect(names.includes(n), `no ${JSON.stringify(n)} in ${JSON.stringify(names)}`);
      }
      return `${names.length} tools`;
    },
  ],
  [
    'echo',
    async (c) => {
      const message = `stateless hello ${RUN_ID} ✓`;
      const r = await c.callTool({ name: 'echo', arguments: { message } });
      expect(!r.isError && textOf(r).includes(message), `echo: ${textOf(r).slice(0, 200)}`);
      return 'echo round-trips';
    },
  ],
  [
    'sampling',
    async (c) => {
      const before = seen.sampling;
      const r = await c.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'Say hello', maxTokens: 32 } });
      expect(seen.sampling > before, 'the sampling handler was never called');
      expect(textOf(r).includes(SAMPLING_MARKER), `marker missing: ${textOf(r).slice(0, 200)}`);
      return 'sampling answered by retry; marker came back';
    },
  ],
  [
    'elicitation',
    async (c) => {
      const before = seen.elicitation;
      const r = await c.callTool({ name: 'trigger-elicitation-request', arguments: {} });
      expect(seen.elicitation > before, 'the elicitation handler was never called');
      expect(textOf(r).includes(ELICITED_NAME), `content not reflected: ${textOf(r).slice(0, 200)}`);
      return 'elicitation answered by retry';
    },
  ],
  [
    'roots',
    async (c) => {
      const before = seen.roots;
      const r = await c.callTool({ name: 'get-roots-list', arguments: {} });
      expect(seen.roots > before, 'the roots handler was never called');
      expect(textOf(r).includes(RUN_ID), `roots not reflected: ${textOf(r).slice(0, 200)}`);
      return 'roots answered by retry';
    },
  ],
];

// within(ms, what, promise): the promise, or a rejection once ms have passed.
function within(ms, what, promise) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function main() {
  const client = new Client(
    { name: 'mesh-ts-stateless-check', version: '1.0.0' },
    {
      capabilities: { sampling: {}, elicitation: {}, roots: {} },
      versionNegotiation: { mode: 'auto' },
    },
  );
  client.setRequestHandler('sampling/createMessage', async () => {
    seen.sampling += 1;
    return {
      role: 'assistant',
      content: { type: 'text', text: `canned reply ${SAMPLING_MARKER}` },
      model: 'mesh-check-model',
      stopReason: 'endTurn',
    };
  });
  client.setRequestHandler('elicitation/create', async () => {
    seen.elicitation += 1;
    return { action: 'accept', content: { name: ELICITED_NAME, check: true } };
  });
  client.setRequestHandler('roots/list', async () => {
    seen.roots += 1;
    return { roots: [{ uri: `file:///tmp/mesh-root-${RUN_ID}`, name: 'mesh-root' }] };
  });
  const headers = args.key ? { Authorization: `Bearer ${args.key}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(args.url), {
    requestInit: { headers },
    fetch: tracedFetch,
  });

  let passed = 0;
  let failed = 0;
  const report = (check, ok, detail) => {
    ok ? passed++ : failed++;
    console.log(JSON.stringify({ check, ok, detail }));
  };
  let mark = wire.length;
  try {
    await within(30_000, 'connect', client.connect(transport));
  } catch (e) {
    report('connect', false, `${e.name}: ${e.message}`);
    dumpWire(mark, 'connect');
  }
  if (failed === 0) {
    for (const [name, check] of CHECKS) {
      mark = wire.length;
      try {
        report(name, true, await within(30_000, name, check(client)));
      } catch (e) {
        report(name, false, `${e.name}: ${e.message}`);
        await new Promise((r) => setTimeout(r, 200)); // let the traced bodies finish reading
        dumpWire(mark, name);
      }
    }
  }
  if (WIRE_ALL) dumpWire(0, 'all');
  await within(5_000, 'close', client.close()).catch(() => {});
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

const overall = setTimeout(() => {
  console.log(JSON.stringify({ check: 'run', ok: false, detail: `not finished within ${args.timeout} s` }));
  dumpWire(0, 'timeout');
  process.exit(1);
}, Number(args.timeout) * 1000);
overall.unref();
process.exitCode = await main();
process.exit(process.exitCode);
