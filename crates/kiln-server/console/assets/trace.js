// A session's trace: every event of every turn, replayed from the start of
// the session's event log and then followed live over the resumable event
// stream (GET /agents/:id/events?after=N; a dropped connection resumes after
// the last event seen). Input requests are answered here, a running turn
// can be cancelled, a new message sent, and any step replayed (studio).
//
// The log numbers events from 1 without gaps; every event is a step except
// each turn's terminal `done` or `error`, so an event's step index is its
// number less one less the terminal events before it. The stream leaves out
// the user's messages: the numbers it skips are read from the session's
// steps (GET /agents/:id), which also carry each step's timing and tokens.

import { get, post, follow, postStream } from './api.js';
import { h, fill, field, time, badge, number, duration, errorBox, json, onSubmit } from './ui.js';

const LIVE = new Set(['running', 'awaiting_input', 'awaiting_tool']);

export async function render(main, [id]) {
  const detail = await get(`/agents/${encodeURIComponent(id)}`);
  let session = detail.session;
  let steps = byIndex(detail.steps);
  const stepViews = new Map();
  // Places held for skipped steps (user messages) until the steps are read.
  const gaps = new Map();
  const answered = new Set();
  let lastInput = null;
  let lastSeq = 0;
  let terminals = 0;

  const header = h('header', { class: 'trace-head' });
  const events = h('ol', { class: 'trace', 'aria-live': 'polite', 'aria-label': 'Trace' });
  const connection = h('p', { class: 'muted connection' }, 'Connecting to the event stream…');
  const composer = h('div');
  main.append(header, events, connection, composer);

  const refresh = async () => {
    try {
      const fresh = await get(`/agents/${encodeURIComponent(id)}`);
      session = fresh.session;
      steps = byIndex(fresh.steps);
      renderHeader();
      for (const [k, place] of gaps) {
        const step = steps.get(k);
        if (!step) continue;
        const view = stepView(fromStep(step), k);
        stepViews.set(k, view);
        place.replaceWith(view.item);
        gaps.delete(k);
      }
      stepViews.forEach((view, k) => view.fillTiming(steps.get(k)));
      renderInputs();
    } catch (err) {
      fill(connection, errorBox(err));
    }
  };
  let refreshing = null;
  const refreshSoon = () => {
    refreshing = refreshing || setTimeout(() => { refreshing = null; refresh(); }, 50);
  };

  function renderHeader() {
    const cancel = h('button', { type: 'button', class: 'danger' }, 'Cancel');
    cancel.addEventListener('click', async () => {
      cancel.disabled = true;
      try {
        const result = await post(`/agents/${encodeURIComponent(id)}/cancel`);
        session = result.session;
        renderHeader();
      } catch (err) {
        header.append(errorBox(err));
        cancel.disabled = false;
      }
    });
    fill(header,
      h('p', {}, h('a', { href: '#/sessions' }, '← Sessions')),
      h('h1', {}, session.title || 'Session'),
      h('div', { class: 'facts' },
        h('span', {}, 'Status ', badge(session.status)),
        h('span', {}, 'Model ', h('code', {}, session.model)),
        h('span', {}, `${number(session.step_count)} steps`),
        h('span', {}, `${number(session.prompt_tokens)} prompt + ${number(session.completion_tokens)} completion tokens`),
        h('span', {}, 'Started ', time(session.created_at)),
        h('span', { class: 'muted' }, session.id)),
      LIVE.has(session.status) ? cancel : null);
  }

  function renderInputs() {
    for (const view of stepViews.values()) view.inputState();
  }

  function stepView(event, k) {
    const d = event.data || {};
    let stepIndex = k;
    const timing = h('div', { class: 'timing' });
    const body = h('div', { class: 'step-body' });
    const kind = d.type || event.event;
    const args = d.args || {};
    let title = kind;
    let inputState = () => {};
    switch (kind) {
      case 'user_message':
        title = 'Message';
        body.append(h('p', { class: 'message' }, d.content));
        break;
      case 'sandbox_event':
        if (args.kind === 'llm') {
          title = 'Model';
          body.append(h('p', { class: 'model-text' }, d.content || args.summary));
        } else {
          title = `Call: ${args.kind}`;
          body.append(h('p', {}, h('code', {}, args.kind), ' ', args.summary || ''));
          if (d.content) body.append(json(d.content));
        }
        break;
      case 'execute_js':
        title = 'Code';
        body.append(h('pre', { class: 'code' }, h('code', {}, d.content)));
        break;
      case 'execute_js_result':
        title = 'Result';
        body.append(json(d.result !== undefined ? d.result : d.content));
        break;
      case 'response':
        title = 'Answer';
        body.append(h('p', { class: 'answer' }, d.content));
        break;
      case 'input_request': {
        title = 'Input requested';
        const requestId = args.request_id;
        lastInput = requestId;
        body.append(h('p', { class: 'question' }, args.message || d.content));
        const slot = h('div');
        body.append(slot);
        inputState = () => {
          const open = session.status === 'awaiting_input' && requestId === lastInput && !answered.has(requestId);
          if (!open) {
            fill(slot, answered.has(requestId) ? h('p', { class: 'muted' }, 'Answered.') : null);
            return;
          }
          if (slot.querySelector('form')) return;
          let control;
          if (args.options && args.options.length) {
            control = h('select', { name: 'answer' }, args.options.map((o) => h('option', { value: o }, o)));
          } else {
            control = h('input', { name: 'answer', placeholder: args.placeholder || '', required: true });
          }
          const form = onSubmit(h('form', { class: 'inline' },
            field('Your answer', control),
            h('button', { type: 'submit', class: 'primary' }, 'Send answer')), async (f) => {
            await post(`/agents/${encodeURIComponent(id)}/input`, { request_id: requestId, value: f.get('answer') });
            answered.add(requestId);
            session = { ...session, status: 'running' };
            renderHeader();
            renderInputs();
          });
          fill(slot, form);
          control.focus();
        };
        break;
      }
      case 'data_update':
        title = 'Data';
        body.append(json(args && Object.keys(args).length ? args : d.content));
        break;
      case 'tool_call':
        title = `Tool call: ${d.tool || ''}`;
        body.append(json(args));
        break;
      case 'tool_result':
        title = 'Tool result';
        body.append(json(d.result !== undefined ? d.result : d.content));
        break;
      default:
        body.append(json(d));
    }
    const replay = h('button', { type: 'button', class: 'link', title: 'Replay the session from this step in a new session' }, 'Replay from here');
    replay.addEventListener('click', async () => {
      replay.disabled = true;
      try {
        await postStream(`/studio/${encodeURIComponent(id)}/replay`, { from_step: stepIndex }, (e) => {
          const sid = e.data && (e.data.session_id || (e.data.args && e.data.args.session_id) || e.data.content);
          if (e.event === 'replay_started' && sid) location.hash = `#/sessions/${sid}`;
        });
      } catch (err) {
        body.append(errorBox(err));
      } finally {
        replay.disabled = false;
      }
    });
    const item = h('li', { class: `step step-${kind}` },
      h('div', { class: 'step-head' }, h('span', { class: 'step-title' }, title), timing, replay),
      body);
    const fillTiming = (step) => {
      if (step) stepIndex = step.step_index;
      if (!step) return;
      const tokens = step.prompt_tokens || step.completion_tokens
        ? `${number(step.prompt_tokens)} + ${number(step.completion_tokens)} tokens` : null;
      fill(timing, `#${step.step_index}`, ' · ', duration(step.duration_ms), tokens ? ` · ${tokens}` : '', ' · ', time(step.created_at));
    };
    if (d.tokens && !steps.get(k)) fill(timing, `${number(d.tokens.prompt)} + ${number(d.tokens.completion)} tokens`);
    fillTiming(steps.get(k));
    return { item, fillTiming, inputState };
  }

  function terminal(event) {
    const d = event.data || {};
    if (event.event === 'done') {
      const s = d.summary || {};
      const t = s.tokens || {};
      return h('li', { class: 'step step-done' },
        h('div', { class: 'step-head' }, h('span', { class: 'step-title' }, 'Turn done'),
          h('div', { class: 'timing' }, `${number(s.steps)} steps · ${number(t.prompt)} + ${number(t.completion)} tokens`)));
    }
    return h('li', { class: 'step step-error' },
      h('div', { class: 'step-head' }, h('span', { class: 'step-title' }, `Turn ended: ${d.code || 'error'}`)),
      h('p', {}, d.content || d.message || ''));
  }

  function placeSkipped(k) {
    const step = steps.get(k);
    if (step) {
      const view = stepView(fromStep(step), k);
      stepViews.set(k, view);
      events.append(view.item);
      return;
    }
    const place = h('li', { class: 'step' }, h('span', { class: 'muted' }, 'Message…'));
    gaps.set(k, place);
    events.append(place);
    refreshSoon();
  }

  renderHeader();

  const stop = follow(`/agents/${encodeURIComponent(id)}/events`, {
    after: 0,
    onOpen: () => fill(connection, 'Following live.'),
    onError: (err) => fill(connection, errorBox(err)),
    onEvent: (event) => {
      const seq = event.id;
      for (let skipped = lastSeq + 1; skipped < seq; skipped++) placeSkipped(skipped - 1 - terminals);
      lastSeq = Math.max(lastSeq, seq);
      if (event.event === 'done' || event.event === 'error') {
        terminals += 1;
        events.append(terminal(event));
        refresh();
        return;
      }
      // A turn's events: it runs (or waits for an answer).
      const status = event.event === 'input_request' ? 'awaiting_input' : 'running';
      if (session.status !== status && (status === 'awaiting_input' || !LIVE.has(session.status))) {
        session = { ...session, status };
        renderHeader();
      }
      const k = seq - 1 - terminals;
      const view = stepView(event, k);
      stepViews.set(k, view);
      events.append(view.item);
      view.inputState();
    },
  });

  const message = h('textarea', { name: 'message', rows: 3, required: true });
  fill(composer, onSubmit(h('form', { class: 'stack composer card' },
    field('Message', message, 'Queued if a turn is running. A ```js fenced block runs as code on the offline model.'),
    h('button', { type: 'submit', class: 'primary' }, 'Send')), async (f) => {
    const queued = await post(`/agents/${encodeURIComponent(id)}/messages`, { message: f.get('message') });
    message.value = '';
    if (queued && queued.status === 'running' && !LIVE.has(session.status)) {
      session = { ...session, status: 'running' };
      renderHeader();
    }
  }));

  return stop;
}

function byIndex(list) {
  return new Map(list.map((step) => [step.step_index, step]));
}

/** A stored step as the stream would have sent it. */
function fromStep(step) {
  return {
    event: step.step_type,
    data: { type: step.step_type, content: step.content, args: step.tool_args, tool: step.tool_name },
  };
}
