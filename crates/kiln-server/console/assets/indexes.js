// Indexes and their documents: create an index, upload with progress and
// watch ingestion (polled until every document settles), see a document's
// versions, delete, and a search playground that puts hybrid, BM25 and
// vector results side by side with their scores.

import { get, post, del, upload } from './api.js';
import { h, add, fill, field, table, time, badge, link, number, errorBox, onSubmit, section, empty } from './ui.js';

const SETTLING = new Set(['pending', 'processing']);
const MODES = [['hybrid', 'Hybrid'], ['bm25', 'BM25'], ['vector', 'Vector']];

export async function render(main, [id]) {
  return id ? detail(main, id) : list(main);
}

async function list(main) {
  main.append(h('h1', {}, 'Indexes'));
  const name = h('input', { name: 'name', required: true, placeholder: 'handbook' });
  const description = h('input', { name: 'description' });
  const form = onSubmit(h('form', { class: 'inline' },
    field('Name', name), field('Description', description),
    h('button', { type: 'submit', class: 'primary' }, 'Create index')), async (f) => {
    const created = await post('/indexes', { name: f.get('name'), description: f.get('description') || undefined });
    const index = created.index || created;
    location.hash = `#/indexes/${index.id}`;
  });
  const body = h('div');
  main.append(section('New index', form), section('All indexes', body));
  const { indexes } = await get('/indexes');
  fill(body, table([
    ['Name', (i) => link(`#/indexes/${i.id}`, i.name)],
    ['Description', (i) => i.description || h('span', { class: 'muted' }, '—')],
    ['Created', (i) => time(i.created_at)],
  ], indexes, { emptyText: 'No indexes yet: create one to upload documents into.' }));
}

async function detail(main, id) {
  const got = await get(`/indexes/${encodeURIComponent(id)}`);
  const index = got.index || got;
  add(main, h('p', {}, h('a', { href: '#/indexes' }, '← Indexes')), h('h1', {}, index.name),
    index.description ? h('p', { class: 'muted' }, index.description) : null);

  // Upload.
  const file = h('input', { type: 'file', name: 'file', required: true });
  const docName = h('input', { name: 'name', placeholder: 'Optional: a stable name; uploading the same name adds a version' });
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const uploaded = h('div', { 'aria-live': 'polite' });
  const form = onSubmit(h('form', { class: 'stack' },
    field('File', file, 'Markdown, text, CSV, HTML, PDF or DOCX.'), field('Document name', docName),
    h('button', { type: 'submit', class: 'primary' }, 'Upload'), progress, uploaded), async (f) => {
    const data = new FormData();
    data.append('file', f.get('file'));
    if (f.get('name')) data.append('name', f.get('name'));
    progress.hidden = false;
    progress.value = 0;
    try {
      const doc = await upload(`/indexes/${encodeURIComponent(id)}/documents`, data, (p) => { progress.value = p; });
      const d = doc.document || doc;
      progress.value = 1;
      fill(uploaded, h('p', {}, `Uploaded ${d.filename}; ingestion follows below.`));
      file.value = '';
      await refresh();
    } finally {
      progress.hidden = true;
    }
  });

  const docs = h('div');
  const versions = h('div');
  main.append(section('Upload', form), section('Documents', docs), versions);

  let timer = null;
  const refresh = async () => {
    clearTimeout(timer);
    try {
      const { data } = await get(`/indexes/${encodeURIComponent(id)}/documents`, { limit: 100 });
      fill(docs, table([
        ['File', (d) => d.filename],
        ['Name', (d) => d.name ? h('button', { type: 'button', class: 'link', onclick: () => showVersions(d.name) }, d.name) : h('span', { class: 'muted' }, '—')],
        ['Version', (d) => d.version],
        ['Status', (d) => [badge(d.status), d.error_message ? h('div', { class: 'error-text' }, d.error_message) : null]],
        ['Chunks', (d) => number(d.chunk_count)],
        ['Size', (d) => `${number(d.file_size)} B`],
        ['Uploaded', (d) => time(d.created_at)],
        ['', (d) => h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${d.filename}`, onclick: () => remove(d) }, 'Delete')],
      ], data, { emptyText: 'No documents yet: upload one above.' }));
      if (data.some((d) => SETTLING.has(d.status))) timer = setTimeout(refresh, 1000);
    } catch (err) {
      fill(docs, errorBox(err));
    }
  };
  const remove = async (d) => {
    if (!confirm(`Delete ${d.filename}?`)) return;
    try {
      await del(`/indexes/${encodeURIComponent(id)}/documents/${encodeURIComponent(d.id)}`);
      await refresh();
    } catch (err) {
      docs.prepend(errorBox(err));
    }
  };
  const showVersions = async (name) => {
    try {
      const { versions: all } = await get(`/indexes/${encodeURIComponent(id)}/documents/by-name/${encodeURIComponent(name)}/versions`);
      fill(versions, section(`Versions of ${name}`, table([
        ['Version', (d) => d.version],
        ['File', (d) => d.filename],
        ['Status', (d) => badge(d.status)],
        ['Latest', (d) => (d.is_latest ? 'yes' : '')],
        ['Uploaded', (d) => time(d.created_at)],
      ], all)));
      versions.scrollIntoView({ block: 'nearest' });
    } catch (err) {
      fill(versions, errorBox(err));
    }
  };
  await refresh();

  // Search playground.
  const query = h('input', { type: 'search', name: 'query', required: true, placeholder: 'Ask what the documents say' });
  const topK = h('input', { type: 'number', name: 'top_k', min: 1, max: 50, value: 5 });
  const results = h('div', { class: 'columns three' });
  const searchForm = onSubmit(h('form', { class: 'inline', role: 'search' },
    field('Query', query), field('Results', topK),
    h('button', { type: 'submit', class: 'primary' }, 'Search')), async (f) => {
    const body = { query: f.get('query'), top_k: Number(f.get('top_k')) || 5, index_id: id };
    const answers = await Promise.allSettled(MODES.map(([mode]) => post(`/indexes/${encodeURIComponent(id)}/search`, { ...body, mode })));
    fill(results, MODES.map(([, label], i) => h('div', { class: 'card results', 'aria-label': `${label} results` },
      h('h3', {}, label),
      answers[i].status === 'rejected' ? errorBox(answers[i].reason) : hits(answers[i].value))));
  });
  main.append(section('Search playground', searchForm, results));

  return () => clearTimeout(timer);
}

function hits(answer) {
  const list = Array.isArray(answer) ? answer : (answer.results || answer.data || []);
  if (!list.length) return empty('No results.');
  return h('ol', { class: 'hits' }, list.map((r) => h('li', {},
    h('div', { class: 'hit-head' }, h('strong', {}, r.document_name || r.filename), h('span', { class: 'score' }, `score ${Number(r.score).toFixed(4)}`)),
    h('p', {}, r.content || (r.best_chunk && r.best_chunk.preview) || ''))));
}
