// Agents (configs deployed as code or made through the API): each one's
// settings, its versions with what changed from the one before, its deploy
// history (from the audit log) and its eval runs with their case results.

import { get } from './api.js';
import { h, add, fill, table, time, badge, link, number, errorBox, section, json, empty, duration } from './ui.js';

const COMPARED = [
  ['model', 'model'], ['provider', 'provider'], ['persona_md', 'persona'], ['skills_json', 'skills'],
  ['stores_json', 'stores'], ['eval_suite_id', 'eval suite'],
];

export async function render(main, [id, sub, runId]) {
  if (id && sub === 'runs' && runId) return run(main, id, runId);
  return id ? detail(main, id) : list(main);
}

async function list(main) {
  main.append(h('h1', {}, 'Agents'));
  const body = h('div');
  main.append(body);
  const answer = await get('/agent-configs');
  const agents = answer.agents || answer.agent_configs || answer.data || answer;
  fill(body, section('All agents', table([
    ['Agent', (a) => link(`#/agents/${a.id}`, a.name)],
    ['Model', (a) => h('code', {}, a.model || '—')],
    ['Description', (a) => a.description || h('span', { class: 'muted' }, '—')],
    ['Published', (a) => time(a.published_at)],
    ['Updated', (a) => time(a.updated_at)],
  ], agents, { emptyText: 'No agents yet. Write one as files with `kiln init` and `kiln deploy`.' })));
}

/** Lines of `a` and `b` as a list of `[sign, line]` (' ', '-', '+'). */
function lineDiff(a, b) {
  const x = (a || '').split('\n');
  const y = (b || '').split('\n');
  const n = x.length;
  const m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([' ', x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(['-', x[i++]]);
    else out.push(['+', y[j++]]);
  }
  while (i < n) out.push(['-', x[i++]]);
  while (j < m) out.push(['+', y[j++]]);
  return out;
}

function changes(version, previous) {
  if (!previous) return h('span', { class: 'muted' }, 'First version');
  const changed = COMPARED.filter(([key]) => JSON.stringify(version[key]) !== JSON.stringify(previous[key]));
  if (!changed.length) return h('span', { class: 'muted' }, 'No change in settings');
  return h('div', {},
    h('p', {}, 'Changed: ', changed.map(([, label]) => label).join(', ')),
    changed.some(([key]) => key === 'persona_md')
      ? h('pre', { class: 'diff' }, lineDiff(previous.persona_md, version.persona_md)
        .filter(([sign]) => sign !== ' ')
        .map(([sign, line]) => h('span', { class: sign === '+' ? 'add' : 'del' }, `${sign} ${line}\n`)))
      : null);
}

async function detail(main, id) {
  const got = await get(`/agent-configs/${encodeURIComponent(id)}`);
  const agent = got.agent || got.agent_config || got;
  add(main, h('p', {}, h('a', { href: '#/agents' }, '← Agents')), h('h1', {}, agent.name),
    agent.description ? h('p', { class: 'muted' }, agent.description) : null);
  main.append(section('Settings', h('dl', { class: 'facts-list' },
    h('dt', {}, 'Model'), h('dd', {}, h('code', {}, `${agent.provider ? `${agent.provider}/` : ''}${agent.model || '—'}`)),
    h('dt', {}, 'Active version'), h('dd', {}, agent.active_version_id || '—'),
    h('dt', {}, 'Eval suite'), h('dd', {}, agent.eval_suite_id || '—'),
    h('dt', {}, 'Evals on publish'), h('dd', {}, agent.run_eval_on_publish ? 'yes' : 'no'),
    h('dt', {}, 'Capabilities'), h('dd', {}, (agent.enabled_capabilities || []).join(', ') || '—')),
    h('details', {}, h('summary', {}, 'Persona'), h('pre', { class: 'persona' }, agent.persona_md || ''))));

  const versions = h('div');
  const deploys = h('div');
  const runs = h('div');
  main.append(section('Versions', versions), section('Deploy history', deploys), section('Eval runs', runs));

  get(`/agent-configs/${encodeURIComponent(id)}/versions`).then((answer) => {
    const list = answer.versions || answer;
    // Newest first; each compared with the one published before it.
    const ordered = [...list].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    fill(versions, table([
      ['Version', (v) => h('strong', {}, v.semver || v.id)],
      ['Model', (v) => h('code', {}, `${v.provider ? `${v.provider}/` : ''}${v.model}`)],
      ['What changed', (v) => changes(v, ordered[ordered.indexOf(v) + 1])],
      ['By', (v) => v.created_by],
      ['Published', (v) => time(v.created_at)],
    ], ordered, { emptyText: 'Not published yet.' }));
  }).catch((err) => fill(versions, errorBox(err)));

  Promise.all(['agent.deploy', 'agent.sync', 'agent.rename', 'agent.settings.update']
    .map((action) => get('/audit-log', { action, limit: 200 })))
    .then((pages) => {
      const entries = pages.flatMap((p) => p.entries).filter((e) => e.subject_id === id)
        .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
      fill(deploys, table([
        ['When', (e) => time(e.created_at)],
        ['Action', (e) => h('code', {}, e.action)],
        ['Details', (e) => Object.entries(e.metadata || {})
          .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ')],
      ], entries, { emptyText: 'No deploys recorded.' }));
    }).catch((err) => fill(deploys, errorBox(err)));

  get(`/agent-configs/${encodeURIComponent(id)}/eval-runs`, { limit: 50 }).then((answer) => {
    const list = answer.runs || answer;
    fill(runs, table([
      ['Run', (r) => link(`#/agents/${id}/runs/${r.id}`, r.id)],
      ['Status', (r) => badge(r.status)],
      ['Passed', (r) => `${number(r.passed)} of ${number(r.total_cases)}`],
      ['Average score', (r) => Number(r.average_score || 0).toFixed(2)],
      ['Target', (r) => r.target],
      ['Started', (r) => time(r.started_at || r.created_at)],
    ], list, { emptyText: 'No eval runs yet.' }));
  }).catch((err) => fill(runs, errorBox(err)));
}

async function run(main, agentId, runId) {
  const { run: r, results } = await get(`/eval-runs/${encodeURIComponent(runId)}`);
  add(main, h('p', {}, h('a', { href: `#/agents/${agentId}` }, '← Agent')), h('h1', {}, `Eval run ${r.id}`),
    h('div', { class: 'facts' }, badge(r.status), ` ${number(r.passed)} passed, ${number(r.failed)} failed of ${number(r.total_cases)}`,
      ` · average ${Number(r.average_score || 0).toFixed(2)} · threshold ${r.threshold}`),
    r.error ? errorBox({ message: r.error }) : null);
  main.append(section('Case results', results.length ? table([
    ['Case', (c) => c.case_name],
    ['Result', (c) => badge(c.pass ? 'passed' : 'failed')],
    ['Score', (c) => c.score],
    ['Reasoning', (c) => c.error ? h('span', { class: 'error-text' }, c.error) : c.reasoning],
    ['Response', (c) => h('details', {}, h('summary', {}, 'Show'), json(c.response))],
    ['Time', (c) => duration(c.duration_ms)],
    ['Session', (c) => (c.session_id ? link(`#/sessions/${c.session_id}`, 'trace') : '—')],
  ], results) : empty('No case has finished yet.')));
}
