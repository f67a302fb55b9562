// Overview: the project's counters (GET /metrics) and what happened lately
// (the newest audit entries and sessions).

import { get } from './api.js';
import { h, fill, section, number, table, time, badge, link, errorBox } from './ui.js';

function card(title, rows) {
  return h('div', { class: 'metric card' },
    h('h3', {}, title),
    h('dl', {}, rows.map(([name, value]) => [h('dt', {}, name), h('dd', {}, value)])));
}

export async function render(main, _params, { project }) {
  main.append(h('h1', {}, 'Overview'), h('p', { class: 'muted' }, `Project ${project.name}`));
  const metrics = h('div', { class: 'metrics' }, h('p', { class: 'muted' }, 'Loading…'));
  const activity = h('div', { class: 'columns' });
  main.append(metrics, activity);
  try {
    const [m, log, recent] = await Promise.all([
      get('/metrics'),
      get('/audit-log', { limit: 10 }),
      get('/agents', { limit: 8 }),
    ]);
    fill(metrics,
      card('Sessions', [
        ['Total', number(m.agents.total_sessions)],
        ['Active', number(m.agents.active_sessions)],
        ['Completed', number(m.agents.completed_sessions)],
        ['Error', number(m.agents.error_sessions)],
        ['Steps', number(m.agents.total_steps)],
      ]),
      card('Tokens', [
        ['Prompt', number(m.tokens.prompt_tokens)],
        ['Completion', number(m.tokens.candidate_tokens)],
        ['Total', number(m.tokens.total_tokens)],
        ['Model calls', number(m.tokens.request_count)],
      ]),
      card('Evals', [
        ['Runs', number(m.evals.total_runs)],
        ['Completed', number(m.evals.completed_runs)],
        ['Cases passed', number(m.evals.total_passed)],
        ['Cases failed', number(m.evals.total_failed)],
        ['Average score', (m.evals.average_score || 0).toFixed(2)],
      ]),
      m.sandbox ? card('Sandbox now', [
        ['Running blocks', `${number(m.sandbox.running_blocks)} of ${number(m.sandbox.running_blocks_limit)}`],
        ['Waiting for a slot', number(m.sandbox.waiting_blocks)],
        ['Waiting for input', `${number(m.sandbox.paused_blocks)} of ${number(m.sandbox.paused_blocks_limit)}`],
      ]) : null);
    fill(activity,
      section('Recent sessions', table([
        ['Session', (s) => link(`#/sessions/${s.id}`, s.title || s.id)],
        ['Status', (s) => badge(s.status)],
        ['Updated', (s) => time(s.updated_at)],
      ], recent.sessions, { emptyText: 'No sessions yet. Start one on the Sessions page.' })),
      section('Recent activity', table([
        ['When', (e) => time(e.created_at)],
        ['Action', (e) => h('code', {}, e.action)],
        ['Subject', (e) => h('span', { title: e.subject_id }, `${e.subject_type} ${e.subject_id.slice(0, 8)}…`)],
      ], log.entries, { emptyText: 'Nothing recorded yet.' })));
  } catch (err) {
    fill(metrics, errorBox(err));
  }
}
