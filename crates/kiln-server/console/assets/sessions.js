// Sessions: the project's agent sessions, newest first, with filters, and
// a form that starts a new one.

import { get, post } from './api.js';
import { h, fill, field, table, time, badge, link, number, duration, errorBox, onSubmit, section } from './ui.js';

const STATUSES = ['active', 'running', 'awaiting_input', 'awaiting_tool', 'error'];
const PAGE = 50;

export async function render(main) {
  main.append(h('h1', {}, 'Sessions'));

  const model = h('input', { name: 'model', placeholder: 'kiln/offline' });
  const prompt = h('textarea', { name: 'system_prompt', rows: 2 });
  const message = h('textarea', { name: 'message', rows: 3, placeholder: 'What should the agent do? A ```js fenced block runs as code on the offline model.' });
  const create = onSubmit(h('form', { class: 'stack' },
    field('Model', model, 'Empty: the server\'s default model.'),
    field('System prompt', prompt),
    field('First message', message, 'Optional: sent as the session\'s first turn.'),
    h('button', { type: 'submit', class: 'primary' }, 'Start session')), async (form) => {
    const body = {};
    if (form.get('model')) body.model = form.get('model');
    if (form.get('system_prompt')) body.system_prompt = form.get('system_prompt');
    const session = await post('/agents', body);
    const first = String(form.get('message') || '').trim();
    if (first) await post(`/agents/${session.id}/messages`, { message: first });
    location.hash = `#/sessions/${session.id}`;
  });
  main.append(h('details', { class: 'card' }, h('summary', {}, 'New session'), create));

  const status = h('select', { name: 'status' },
    h('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => h('option', { value: s }, s)));
  const text = h('input', { type: 'search', name: 'text', placeholder: 'Title, id, model or agent' });
  const filters = h('form', { class: 'filters', role: 'search' },
    field('Status', status), field('Find', text));
  const list = h('div');
  const more = h('button', { type: 'button' }, 'Load more');
  main.append(section('All sessions', filters, list, more));

  let loaded = [];
  const show = () => {
    const wanted = status.value;
    const needle = text.value.trim().toLowerCase();
    const rows = loaded.filter((s) =>
      (!wanted || s.status === wanted)
      && (!needle || [s.id, s.title, s.model, s.agent_id].some((v) => v && v.toLowerCase().includes(needle))));
    fill(list, table([
      ['Session', (s) => link(`#/sessions/${s.id}`, s.title || s.id)],
      ['Status', (s) => badge(s.status)],
      ['Model', (s) => s.model],
      ['Steps', (s) => number(s.step_count)],
      ['Tokens', (s) => number(s.prompt_tokens + s.completion_tokens)],
      ['Time', (s) => duration(s.duration_ms)],
      ['Updated', (s) => time(s.updated_at)],
    ], rows, { emptyText: loaded.length ? 'No session matches these filters.' : 'No sessions yet: start one above.' }));
  };
  const page = async () => {
    more.disabled = true;
    try {
      const { sessions } = await get('/agents', { limit: PAGE, offset: loaded.length });
      loaded = loaded.concat(sessions);
      more.hidden = sessions.length < PAGE;
      show();
    } catch (err) {
      fill(list, errorBox(err));
    } finally {
      more.disabled = false;
    }
  };
  status.addEventListener('change', show);
  text.addEventListener('input', show);
  filters.addEventListener('submit', (e) => e.preventDefault());
  more.addEventListener('click', page);
  await page();
}
