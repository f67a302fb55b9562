// DOM helpers. Every string goes in as a text node or an attribute, never
// as HTML, so nothing the API returns can become markup.

/** `h('button', {onclick, class: 'primary'}, 'Save')` */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Appends `children` to `el`, skipping empty ones (null, false). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

/** Replaces `el`'s children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A labelled control: `field('Name', h('input', {...}))`. */
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++ids}`;
  return h('div', { class: 'field' },
    h('label', { for: control.id }, label),
    control,
    hint ? h('small', { class: 'hint' }, hint) : null);
}

/** A time in the viewer's zone, with the ISO value on hover. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  return h('time', { datetime: iso, title: d.toString() }, d.toLocaleString());
}

export function number(n) {
  return new Intl.NumberFormat().format(n || 0);
}

export function duration(ms) {
  if (ms === undefined || ms === null) return '—';
  if (ms < 1000) return `${ms} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function badge(status) {
  return h('span', { class: `badge status-${String(status).replace(/[^a-z_]/g, '')}` }, status);
}

/** An error as the API said it: its `message`, and its code. */
export function errorBox(err) {
  return h('div', { class: 'error', role: 'alert' },
    h('strong', {}, err.message || String(err)),
    err.code ? h('span', { class: 'muted' }, ` (${err.code})`) : null);
}

export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

/** A table; `columns` are `[heading, row => cell]`. */
export function table(columns, rows, { caption, emptyText } = {}) {
  if (!rows.length) return empty(emptyText || 'Nothing here yet.');
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map(([name]) => h('th', { scope: 'col' }, name)))),
      h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row))))))));
}

export function link(href, text) {
  return h('a', { href }, text);
}

/** Runs `work` when `form` submits, showing its error in `form`. */
export function onSubmit(form, work) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    form.querySelector(':scope > .error')?.remove();
    if (button) button.disabled = true;
    try {
      await work(new FormData(form));
    } catch (err) {
      form.append(errorBox(err));
    } finally {
      if (button) button.disabled = false;
    }
  });
  return form;
}

/** A page section with a heading. */
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), children);
}

/** Shows `promise`'s outcome in `el`: a loading line, then `render(value)` or the error. */
export async function load(el, promise, render) {
  fill(el, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const value = await promise;
    fill(el, render(value));
  } catch (err) {
    fill(el, errorBox(err));
  }
}

export function json(value) {
  return h('pre', { class: 'json' }, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
}
