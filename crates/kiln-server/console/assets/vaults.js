// Secret vaults: which exist and which one the project designates for
// provider keys; set and delete secrets. Values are write-only: the API
// never returns them and this page never shows what was typed.

import { get, post, put, del } from './api.js';
import { h, fill, field, table, time, errorBox, onSubmit, section } from './ui.js';

export async function render(main, _params, { refreshProject }) {
  main.append(h('h1', {}, 'Vaults'),
    h('p', { class: 'muted' }, 'The designated vault supplies provider keys (openai_api_key, anthropic_api_key, …) to this project\'s models and tools. Secret values can be set and deleted, never read back.'));
  const name = h('input', { name: 'name', required: true, placeholder: 'llm-keys' });
  const create = onSubmit(h('form', { class: 'inline' }, field('Name', name),
    h('button', { type: 'submit', class: 'primary' }, 'Create vault')), async (f) => {
    await post('/secret-vaults', { name: f.get('name') });
    name.value = '';
    await show();
  });
  const body = h('div');
  main.append(section('New vault', create), body);

  const show = async () => {
    try {
      const [{ secret_vaults: vaults }, project] = await Promise.all([get('/secret-vaults'), refreshProject()]);
      if (!vaults.length) {
        fill(body, section('All vaults', h('p', { class: 'empty' }, 'No vaults yet: create one to hold provider keys.')));
        return;
      }
      fill(body, vaults.map((v) => vaultCard(v, project.vault_id === v.id, show)));
    } catch (err) {
      fill(body, errorBox(err));
    }
  };
  await show();
}

function vaultCard(vault, designated, reload) {
  const secrets = h('div');
  const designate = h('button', { type: 'button' }, designated ? 'Stop using for provider keys' : 'Use for provider keys');
  designate.addEventListener('click', async () => {
    try {
      await put('/project/vault', { vault_id: designated ? null : vault.id });
      await reload();
    } catch (err) {
      card.append(errorBox(err));
    }
  });
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete vault');
  remove.addEventListener('click', async () => {
    if (!confirm(`Delete the vault ${vault.name} and its secrets?`)) return;
    try {
      await del(`/secret-vaults/${encodeURIComponent(vault.id)}`);
      await reload();
    } catch (err) {
      card.append(errorBox(err));
    }
  });
  const secretName = h('input', { name: 'name', required: true, placeholder: 'openai_api_key', autocomplete: 'off' });
  const secretValue = h('input', { name: 'value', type: 'password', required: true, autocomplete: 'new-password' });
  const set = onSubmit(h('form', { class: 'inline' }, field('Secret name', secretName), field('Value', secretValue),
    h('button', { type: 'submit', class: 'primary' }, 'Set secret')), async (f) => {
    await put(`/secret-vaults/${encodeURIComponent(vault.id)}/secrets/${encodeURIComponent(f.get('name'))}`, { value: f.get('value') });
    secretName.value = '';
    secretValue.value = '';
    await listSecrets();
  });
  const listSecrets = async () => {
    try {
      const { secrets: all } = await get(`/secret-vaults/${encodeURIComponent(vault.id)}/secrets`);
      fill(secrets, table([
        ['Name', (s) => h('code', {}, s.name)],
        ['Value', () => h('span', { class: 'muted' }, 'hidden')],
        ['Updated', (s) => time(s.updated_at)],
        ['', (s) => h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete secret ${s.name}`, onclick: async () => {
          try {
            await del(`/secret-vaults/${encodeURIComponent(vault.id)}/secrets/${encodeURIComponent(s.name)}`);
            await listSecrets();
          } catch (err) {
            secrets.append(errorBox(err));
          }
        } }, 'Delete')],
      ], all, { emptyText: 'No secrets in this vault yet.' }));
    } catch (err) {
      fill(secrets, errorBox(err));
    }
  };
  const card = section(vault.name,
    h('p', {}, designated ? h('strong', { class: 'designated' }, 'Designated: supplies this project\'s provider keys.') : h('span', { class: 'muted' }, 'Not designated.'),
      ' ', h('span', { class: 'muted' }, `Created ${new Date(vault.created_at).toLocaleString()}`)),
    h('div', { class: 'actions' }, designate, remove),
    secrets, set);
  listSecrets();
  return card;
}
