// Runs the unmodified jsforce client (npm, version pinned in package.json) against
// `sfetl simulate`:  (cd tests/compat && npm install) && node tests/compat/jsforce_check.mjs
// SIM_CMD overrides how the simulator starts (default: the debug build of `sfetl simulate`,
// built by the caller, e.g. tests/compat/run.sh). Exit status 0 when every check passes.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jsforce from 'jsforce';

const SCALE = 1000;
let failed = 0;
const check = (name, cond, detail = '') => {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${name}${!cond && detail ? `: ${JSON.stringify(detail)}` : ''}`);
  if (!cond) failed += 1;
};

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
const cmd = (process.env.SIM_CMD || `${path.join(target, 'debug', 'sfetl')} simulate`).split(' ');
const sim = spawn(cmd[0], [...cmd.slice(1), '--scale', String(SCALE), '--seed', '5'], { stdio: ['ignore', 'pipe', 'inherit'] });
const creds = JSON.parse(await new Promise((resolve, reject) => {
  createInterface({ input: sim.stdout }).once('line', resolve);
  sim.once('exit', () => reject(new Error('simulator exited before printing credentials')));
}));

async function accessToken() {
  const r = await fetch(`${creds.login_url}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.refresh_token,
      client_id: creds.client_id, client_secret: creds.client_secret }),
  });
  if (r.status !== 200) throw new Error(`refresh_token grant answered ${r.status}`);
  return (await r.json()).access_token;
}

try {
  const conn = new jsforce.Connection({ instanceUrl: creds.base_url, accessToken: await accessToken(), version: '59.0' });
  const page = await conn.query('SELECT Id, Name FROM Account');
  check('query', page.totalSize === SCALE && page.records.length === SCALE, page.totalSize);
  const all = await conn.query('SELECT Id, LastName, Account.Name FROM Contact', { autoFetch: true, maxFetch: 100000 });
  check('query with autoFetch over pages', all.totalSize === 3 * SCALE && all.records.length === 3 * SCALE, all.records.length);
  const withParent = all.records.find((r) => r.Account);
  check('parent relationship object', withParent && withParent.Account.attributes.type === 'Account');
  const deep = await conn.query('SELECT Id, Account.Name, Account.Owner.Name FROM Contact WHERE Account.OwnerId != null LIMIT 5');
  check('two-level parent path', deep.records.length === 5 && deep.records.every((r) => r.Account.attributes.type === 'Account'
    && r.Account.Owner.attributes.type === 'User' && typeof r.Account.Owner.Name === 'string'), deep.records[0]);
  const d = await conn.sobject('Contact').describe();
  check('describe', d.fields.some((f) => f.name === 'External_Id__c' && f.externalId));
  const g = await conn.describeGlobal();
  check('describeGlobal', g.sobjects.some((s) => s.name === 'Score__c'));
  const created = await conn.sobject('Contact').create([
    { LastName: 'Js 1', External_Id__c: 'JS-1' },
    { FirstName: 'missing last name' },
  ], { allOrNone: false });
  check('collections create', created[0].success && !created[1].success
    && created[1].errors[0].statusCode === 'REQUIRED_FIELD_MISSING', created);
  const rec = await conn.sobject('Contact').retrieve(created[0].id);
  check('retrieve', rec.Id === created[0].id && rec.LastName === 'Js 1');
  const up = await conn.sobject('Contact').upsert([{ External_Id__c: 'JS-1', Score__c: 5 }, { External_Id__c: 'JS-2', LastName: 'Js 2' }], 'External_Id__c');
  check('collections upsert', up.length === 2 && up.every((r) => r.success), up);
  try {
    await conn.query('SELECT Nope FROM Contact');
    check('invalid field rejected', false);
  } catch (e) {
    check('invalid field rejected', e.errorCode === 'INVALID_FIELD', e.errorCode);
  }
  conn.bulk2.pollInterval = 50;
  const stream = await conn.bulk2.query('SELECT Id, LastName, Description FROM Contact');
  const rows = [];
  await new Promise((resolve, reject) => stream.on('record', (r) => rows.push(r)).on('end', resolve).on('error', reject));
  check('bulk2 query', rows.length === 3 * SCALE + 2, rows.length);
  const res = await conn.bulk2.loadAndWaitForResults({
    object: 'Lead', operation: 'upsert', externalIdFieldName: 'External_Id__c',
    input: 'External_Id__c,LastName,Company,Score__c\nJ-1,"One, ""quoted""",Acme,1.5\nJ-2,Two,Acme,oops\n',
  });
  check('bulk2 ingest upsert', res.successfulResults.length === 1 && res.failedResults.length === 1
    && res.failedResults[0].sf__Error.startsWith('INVALID_TYPE_ON_FIELD_IN_RECORD'), res);
} catch (e) {
  check('unexpected error', false, String(e && e.stack || e));
} finally {
  sim.kill('SIGTERM');
}
console.log(`jsforce compatibility: ${failed ? 'FAILED' : 'all checks passed'}`);
process.exit(failed ? 1 : 0);
