// Prompt templates: list, create, edit and delete.

import { get, post, patch, del } from './api.js';
import { h, fill, field, table, time, errorBox, onSubmit, section } from './ui.js';

export async function render(main) {
  main.append(h('h1', {}, 'Templates'));
  const editor = h('div');
  const body = h('div');
  main.append(editor, section('All templates', body));

  const edit = (template) => {
    const name = h('input', { name: 'name', required: true, value: template ? template.name : '' });
    const content = h('textarea', { name: 'content', rows: 6, required: true });
    content.value = template ? template.content : '';
    const form = onSubmit(h('form', { class: 'stack' },
      field('Name', name),
      field('Content', content, 'Variables are written {{name}}.'),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary' }, template ? 'Save template' : 'Create template'),
        template ? h('button', { type: 'button', onclick: () => edit(null) }, 'New template instead') : null)), async (f) => {
      const body = { name: f.get('name'), content: f.get('content') };
      if (template) await patch(`/prompt-templates/${encodeURIComponent(template.id)}`, body);
      else await post('/prompt-templates', body);
      edit(null);
      await show();
    });
    fill(editor, section(template ? `Edit ${template.name}` : 'New template', form));
    if (template) name.focus();
  };

  const show = async () => {
    try {
      const { templates } = await get('/prompt-templates');
      fill(body, table([
        ['Name', (t) => h('button', { type: 'button', class: 'link', onclick: () => edit(t) }, t.name)],
        ['Variables', (t) => (t.variables || []).map((v) => h('code', { class: 'var' }, v))],
        ['Content', (t) => h('span', { class: 'clip' }, t.content)],
        ['Updated', (t) => time(t.updated_at)],
        ['', (t) => h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete template ${t.name}`, onclick: async () => {
          if (!confirm(`Delete the template ${t.name}?`)) return;
          try {
            await del(`/prompt-templates/${encodeURIComponent(t.id)}`);
            await show();
          } catch (err) {
            body.prepend(errorBox(err));
          }
        } }, 'Delete')],
      ], templates, { emptyText: 'No templates yet: write one above.' }));
    } catch (err) {
      fill(body, errorBox(err));
    }
  };
  edit(null);
  await show();
}
