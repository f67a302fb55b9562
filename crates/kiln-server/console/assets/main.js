// The console's shell: sign-in, navigation and the hash router. Pages are
// modules whose `render(main, params)` fills the main area and may return a
// function that stops what they started (live streams, polling).

import { apiKey, setApiKey, get } from './api.js';
import { h, fill, field, errorBox } from './ui.js';
import * as overview from './overview.js';
import * as agents from './agents.js';
import * as sessions from './sessions.js';
import * as trace from './trace.js';
import * as indexes from './indexes.js';
import * as vaults from './vaults.js';
import * as templates from './templates.js';
import * as audit from './audit.js';

const NAV = [
  ['overview', 'Overview'],
  ['agents', 'Agents'],
  ['sessions', 'Sessions'],
  ['indexes', 'Indexes'],
  ['vaults', 'Vaults'],
  ['templates', 'Templates'],
  ['audit', 'Audit log'],
];

// `#/sessions/ID` → sessions module with params ['ID'].
const ROUTES = {
  overview: (p) => [overview, p],
  agents: (p) => [agents, p],
  sessions: (p) => (p.length ? [trace, p] : [sessions, p]),
  indexes: (p) => [indexes, p],
  vaults: (p) => [vaults, p],
  templates: (p) => [templates, p],
  audit: (p) => [audit, p],
};

const app = document.getElementById('app');
let stopPage = null;
let project = null;

function signIn(message) {
  setApiKey(null);
  project = null;
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', required: true, placeholder: 'kiln_…' });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'signin card' },
    h('h1', {}, 'Kiln console'),
    h('p', {}, 'Sign in with an API key. It is kept in this tab only and sent to this server\'s API.'),
    field('API key', input),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    status);
  if (message) status.append(errorBox(message));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fill(status);
    setApiKey(input.value.trim());
    try {
      project = await get('/project');
      if (!location.hash || location.hash === '#/') location.hash = '#/overview';
      else route();
    } catch (err) {
      setApiKey(null);
      fill(status, errorBox(err));
      input.focus();
    }
  });
  fill(app, h('main', { class: 'signin-page' }, form));
  input.focus();
}

function shell() {
  const nav = h('nav', { 'aria-label': 'Console' },
    h('a', { class: 'brand', href: '#/overview' }, 'Kiln'),
    h('ul', {}, NAV.map(([id, name]) => h('li', {}, h('a', { href: `#/${id}`, dataset: { page: id } }, name)))),
    h('div', { class: 'who' },
      h('span', { class: 'project', title: project.id }, project.name),
      h('button', { type: 'button', class: 'link', onclick: () => { stop(); location.hash = ''; signIn(); } }, 'Sign out')));
  const main = h('main', { id: 'main', tabindex: '-1' });
  fill(app, h('div', { class: 'shell' }, nav, main));
  return main;
}

function stop() {
  if (stopPage) stopPage();
  stopPage = null;
}

async function route() {
  if (!apiKey()) return signIn();
  if (!project) {
    try {
      project = await get('/project');
    } catch (err) {
      return signIn(err);
    }
  }
  stop();
  const [page, ...params] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const pick = ROUTES[page] || ROUTES.overview;
  const [module, p] = pick(params.filter(Boolean));
  let main = document.getElementById('main');
  if (!main) main = shell();
  const current = page in ROUTES ? page : 'overview';
  for (const a of app.querySelectorAll('nav a[data-page]')) {
    if (a.dataset.page === current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  fill(main);
  try {
    stopPage = (await module.render(main, p, { project, refreshProject })) || null;
  } catch (err) {
    fill(main, errorBox(err));
  }
}

async function refreshProject() {
  project = await get('/project');
  return project;
}

window.addEventListener('hashchange', route);
route();
