// stateless_server_client.mjs — drive ../py/stateless_server.py (through the mesh) with the official
// TypeScript SDK v2's client and report per check; the counterpart of ../py/stateless_server_client.py.
//
// `--mode auto` (the default): `versionNegotiation: { mode: 'auto' }` probes with `server/discover`
// and speaks the stateless revision (2026-07-28); the server's questions come back as input-required
// results that the SDK answers through the handlers below and retries. `--mode legacy`: the SDK's
// default `initialize` handshake (2025-11-25), where the questions arrive as server-to-client
// requests — through the mesh to a stateless-only server, the mesh's bridge.
//
// The handlers record what they were asked, so the checks prove both directions: the question
// reached the client as the server put it, and the client's answer reached the tool.
//
// Output: one JSON line per check, {"check": name, "ok": bool, "detail": "..."}, then
// "N passed, M failed". Exit 0 only when every check passed. Every check has its own deadline,
// the whole run another.
//
//   node stateless_server_client.mjs --url http://127.0.0.1:PORT/mcp/py --key KEY [--mode legacy]
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
    mode: { type: 'string', default: 'auto' },
    timeout: { type: 'string', default: '120' },
  },
});
if (!args.url || !['auto', 'legacy'].includes(args.mode)) {
  console.error('usage: stateless_server_client.mjs --url URL [--key KEY] [--mode auto|legacy] [--timeout SECONDS]');
  process.exit(2);
}

// The package is ESM-first: follow its `exports["."].import` rather than require.resolve.
const here = path.dirname(fileURLToPath(import.meta.url));
const depsDir = process.env.MESH_TEST_DEPS || path.resolve(here, '../../../.test-deps');
const pkgDir = path.join(depsDir, 'npm', 'node_modules', '@modelcontextprotocol', 'client');
const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
const entry = pkg.exports['.'].import.default ?? pkg.exports['.'].import;
const { Client, StreamableHTTPClientTransport } = await import(pathToFileURL(path.join(pkgDir, entry)).href);

const RUN_ID = randomUUID().slice(0, 8);
const NAME = `Grace ${RUN_ID}`;
const MODEL_TEXT = `sampled-${RUN_ID}`;
const EXPECTED_TOOLS = ['add', 'ask_model', 'ask_name', 'ask_name_then_model', 'count'];

// What the server asked, in order.
const asked = [];

class CheckFailed extends Error {}
function expect(cond, detail) {
  if (!cond) throw new CheckFailed(detail);
}
const textOf = (r) =>
  (r.content ?? [])
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('\n');
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function expectNameQuestion(q) {
  expect(q?.kind === 'elicitation', `expected an elicitation, got ${JSON.stringify(q)}`);
  expect(q.message === 'What is your name?', `message: ${JSON.stringify(q.message)}`);
  expect(q.schema?.properties?.name?.type === 'string', `schema: ${JSON.stringify(q.schema)}`);
  expect(same(q.schema?.required, ['name']), `schema: ${JSON.stringify(q.schema)}`);
}

const CHECKS = [
  [
    'version',
    async (c) => {
      const v = c.getNegotiatedProtocolVersion();
      const want = args.mode === 'auto' ? '2026-07-28' : '2025-11-25';
      expect(v === want, `negotiated ${v}, expected ${want}`);
      return `protocol ${v}, server ${JSON.stringify(c.getServerVersion())}`;
    },
  ],
  [
    'tools',
    async (c) => {
      const names = (await c.listTools()).tools.map((t) => t.name).sort();
      expect(same(names, EXPECTED_TOOLS), `tools: ${JSON.stringify(names)}`);
      return names.join(', ');
    },
  ],
  [
    'add',
    async (c) => {
      const r = await c.callTool({ name: 'add', arguments: { a: 40, b: 2 } });
      expect(!r.isError && textOf(r) === '42', `text: ${JSON.stringify(textOf(r))}`);
      expect(same(r.structuredContent, { result: 42 }), `structured: ${JSON.stringify(r.structuredContent)}`);
      return '40 + 2 = 42';
    },
  ],
  [
    'ask_name',
    async (c) => {
      const mark = asked.length;
      const r = await c.callTool({ name: 'ask_name', arguments: {} });
      const qs = asked.slice(mark);
      expect(qs.length === 1, `asked ${JSON.stringify(qs)}`);
      expectNameQuestion(qs[0]);
      expect(!r.isError && textOf(r) === `Hello, ${NAME}`, `result: ${JSON.stringify(textOf(r))}`);
      return textOf(r);
    },
  ],
  [
    'ask_model',
    async (c) => {
      const mark = asked.length;
      const prompt = `Say something about ${RUN_ID}`;
      const r = await c.callTool({ name: 'ask_model', arguments: { prompt } });
      const qs = asked.slice(mark);
      expect(same(qs, [{ kind: 'sampling', prompt }]), `asked ${JSON.stringify(qs)}`);
      const want = `The model said: ${MODEL_TEXT} re: ${prompt}`;
      expect(!r.isError && textOf(r) === want, `result: ${JSON.stringify(textOf(r))}`);
      return textOf(r);
    },
  ],
  [
    'ask_name_then_model',
    async (c) => {
      const mark = asked.length;
      const r = await c.callTool({ name: 'ask_name_then_model', arguments: {} });
      const qs = asked.slice(mark);
      expect(qs.length === 2, `asked ${JSON.stringify(qs)}`);
      expectNameQuestion(qs[0]);
      const greeting = `Write a one-line greeting for ${NAME}.`;
      expect(same(qs[1], { kind: 'sampling', prompt: greeting }), `second question: ${JSON.stringify(qs[1])}`);
      const want = `${NAME}: ${MODEL_TEXT} re: ${greeting}`;
      expect(!r.isError && textOf(r) === want, `result: ${JSON.stringify(textOf(r))}`);
      return 'elicitation, then sampling on its answer';
    },
  ],
  [
    'progress',
    async (c) => {
      const seen = [];
      const r = await c.callTool(
        { name: 'count', arguments: { steps: 3 } },
        { onprogress: (p) => seen.push([p.progress, p.total, p.message]) },
      );
      expect(!r.isError && textOf(r) === 'counted to 3', `result: ${JSON.stringify(textOf(r))}`);
      const want = [
        [1, 3, 'step 1'],
        [2, 3, 'step 2'],
        [3, 3, 'step 3'],
      ];
      expect(same(seen, want), `progress: ${JSON.stringify(seen)}`);
      return `${seen.length} progress notifications`;
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
  const options = { capabilities: { sampling: {}, elicitation: {} } };
  if (args.mode === 'auto') options.versionNegotiation = { mode: 'auto' };
  const client = new Client({ name: 'mesh-ts-stateless-server-check', version: '1.0.0' }, options);
  client.setRequestHandler('elicitation/create', async (request) => {
    asked.push({ kind: 'elicitation', message: request.params.message, schema: request.params.requestedSchema });
    return { action: 'accept', content: { name: NAME } };
  });
  client.setRequestHandler('sampling/createMessage', async (request) => {
    const prompt = request.params.messages
      .flatMap((m) => (Array.isArray(m.content) ? m.content : [m.content]))
      .filter((b) => b.type === 'text')
      .map((b) => b.text)
      .join(' ');
    asked.push({ kind: 'sampling', prompt });
    return {
      role: 'assistant',
      content: { type: 'text', text: `${MODEL_TEXT} re: ${prompt}` },
      model: 'mesh-check-model',
      stopReason: 'endTurn',
    };
  });
  const headers = args.key ? { Authorization: `Bearer ${args.key}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(args.url), { requestInit: { headers } });

  let passed = 0;
  let failed = 0;
  const report = (check, ok, detail) => {
    ok ? passed++ : failed++;
    console.log(JSON.stringify({ check, ok, detail }));
  };
  try {
    await within(30_000, 'connect', client.connect(transport));
  } catch (e) {
    report('connect', false, `${e.name}: ${e.message}`);
  }
  if (failed === 0) {
    for (const [name, check] of CHECKS) {
      try {
        report(name, true, await within(30_000, name, check(client)));
      } catch (e) {
        report(name, false, `${e.name}: ${e.message}`);
      }
    }
  }
  await within(5_000, 'close', client.close()).catch(() => {});
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

const overall = setTimeout(() => {
  console.log(JSON.stringify({ check: 'run', ok: false, detail: `not finished within ${args.timeout} s` }));
  process.exit(1);
}, Number(args.timeout) * 1000);
overall.unref();
process.exitCode = await main();
process.exit(process.exitCode);
