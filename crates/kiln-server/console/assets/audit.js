// The audit log: every recorded action, newest first, with filters, pages
// and an export of what the filters select.

import { get, blob } from './api.js';
import { h, fill, field, table, time, errorBox, section } from './ui.js';

const PAGE = 50;

/** A `datetime-local` value (the viewer's zone) as RFC 3339, or undefined. */
function instant(value) {
  return value ? new Date(value).toISOString() : undefined;
}

export async function render(main) {
  main.append(h('h1', {}, 'Audit log'));
  const action = h('input', { name: 'action', placeholder: 'index.create' });
  const subject = h('input', { name: 'subject_type', placeholder: 'index' });
  const from = h('input', { name: 'from', type: 'datetime-local' });
  const to = h('input', { name: 'to', type: 'datetime-local' });
  const filters = h('form', { class: 'filters', role: 'search' },
    field('Action', action), field('Subject type', subject), field('From', from), field('To', to),
    h('button', { type: 'submit', class: 'primary' }, 'Apply filters'));
  const body = h('div');
  const pager = h('div', { class: 'pager' });
  const exportCsv = h('button', { type: 'button' }, 'Export CSV');
  const exportJson = h('button', { type: 'button' }, 'Export JSON');
  main.append(section('Filters', filters, h('div', { class: 'actions' }, exportCsv, exportJson)), section('Entries', body, pager));

  let offset = 0;
  const query = () => ({
    action: action.value.trim() || undefined,
    subject_type: subject.value.trim() || undefined,
    from: instant(from.value),
    to: instant(to.value),
  });
  const show = async () => {
    try {
      const page = await get('/audit-log', { ...query(), limit: PAGE, offset });
      fill(body, table([
        ['When', (e) => time(e.created_at)],
        ['Action', (e) => h('code', { class: 'action' }, e.action)],
        ['Subject', (e) => [h('span', { class: 'muted' }, `${e.subject_type} `), e.subject_id]],
        ['Actor', (e) => e.actor_api_key_id || e.actor_user_id || h('span', { class: 'muted' }, 'server')],
        ['Details', (e) => (Object.keys(e.metadata || {}).length ? h('code', { class: 'clip' }, JSON.stringify(e.metadata)) : '')],
      ], page.entries, { emptyText: 'No entries match these filters.' }));
      const prev = h('button', { type: 'button', disabled: offset === 0 }, 'Newer');
      const next = h('button', { type: 'button', disabled: offset + PAGE >= page.total }, 'Older');
      prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); show(); });
      next.addEventListener('click', () => { offset += PAGE; show(); });
      fill(pager, prev, h('span', { class: 'muted' }, page.total ? `${offset + 1}–${Math.min(offset + PAGE, page.total)} of ${page.total}` : ''), next);
    } catch (err) {
      fill(body, errorBox(err));
      fill(pager);
    }
  };
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    offset = 0;
    show();
  });
  const download = async (format) => {
    try {
      const file = await blob('/audit-log/export', { ...query(), format });
      const a = h('a', { href: URL.createObjectURL(file), download: `kiln-audit.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (err) {
      body.prepend(errorBox(err));
    }
  };
  exportCsv.addEventListener('click', () => download('csv'));
  exportJson.addEventListener('click', () => download('json'));
  await show();
}
