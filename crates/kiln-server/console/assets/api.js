// The console's only way to the server: the public API under /api/sdk,
// with the API key the user signed in with. The key lives in this tab's
// sessionStorage and nowhere else.

const KEY = 'kiln.apiKey';
const BASE = '/api/sdk';

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** An answer outside 2xx, carrying the contract's error body. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = body && body.code;
    this.body = body;
  }
}

/** The key's header, with `extra` headers. */
function headers(extra) {
  return { 'X-API-Key': apiKey() || '', ...extra };
}

function url(path, query) {
  const u = new URL(BASE + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  }
  return u;
}

async function failure(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  return new ApiError(res.status, body);
}

/** One call; resolves to the parsed JSON (null for 204). */
export async function call(method, path, { body, query, signal } = {}) {
  const json = body !== undefined;
  const res = await fetch(url(path, query), {
    method,
    headers: headers(json ? { 'Content-Type': 'application/json' } : {}),
    body: json ? JSON.stringify(body) : undefined,
    signal,
  });
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, query, opts) => call('GET', path, { ...opts, query });
export const post = (path, body, opts) => call('POST', path, { ...opts, body });
export const put = (path, body) => call('PUT', path, { body });
export const patch = (path, body) => call('PATCH', path, { body });
export const del = (path) => call('DELETE', path);

/** A download of `path` as a Blob (exports), with the key attached. */
export async function blob(path, query) {
  const res = await fetch(url(path, query), { headers: headers() });
  if (!res.ok) throw await failure(res);
  return res.blob();
}

/**
 * Uploads `form` (multipart) to `path`, reporting progress as a fraction.
 * XMLHttpRequest, because fetch cannot report upload progress.
 */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', BASE + path);
    xhr.setRequestHeader('X-API-Key', apiKey() || '');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { message: 'The upload could not reach the server.' }));
    xhr.send(form);
  });
}

/**
 * Follows a Server-Sent Events stream, calling `onEvent({id, event, data})`
 * for each event, resuming after the last id seen when the connection
 * drops. Returns a function that stops following.
 */
export function follow(path, { after, onEvent, onError, onOpen }) {
  const controller = new AbortController();
  let last = after;
  let stopped = false;
  (async () => {
    let delay = 500;
    while (!stopped) {
      try {
        const res = await fetch(url(path, { after: last }), {
          headers: headers({ Accept: 'text/event-stream' }),
          signal: controller.signal,
        });
        if (!res.ok) throw await failure(res);
        if (onOpen) onOpen();
        delay = 500;
        await readEvents(res, (event) => {
          if (event.id !== undefined) last = event.id;
          onEvent(event);
        });
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
          if (onError) onError(e);
          return;
        }
      }
      if (stopped) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  })();
  return () => {
    stopped = true;
    controller.abort();
  };
}

/** POSTs `body` to an endpoint answering with an event stream; resolves when it ends. */
export async function postStream(path, body, onEvent) {
  const res = await fetch(url(path), {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
    body: JSON.stringify(body),
  });
  if (!res.ok) throw await failure(res);
  await readEvents(res, onEvent);
}

async function readEvents(res, onEvent) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseBlock(block);
      if (event) onEvent(event);
    }
  }
}

function parseBlock(block) {
  let id;
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') id = Number(value);
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return null;
  let parsed;
  try {
    parsed = JSON.parse(data.join('\n'));
  } catch {
    parsed = data.join('\n');
  }
  return { id, event, data: parsed };
}
