// The operator's console: every event's numbers, read each second, and
// its admission controls. The admin token lives in sessionStorage (this
// tab only) and travels only in the Authorization header.
import { api, ApiError, describe, $, show, element } from '/assets/common.js';

const KEY = 'ticketbench:admin-token';
/** How often the numbers are read. */
const REFRESH_MS = 1000;
/** The window sales per second are measured over. */
const SALES_WINDOW_MS = 5000;

let timer = null;
const cards = new Map();
/** Per event: recent `[time, sold]` samples, for sales per second. */
const samples = new Map();

const token = () => sessionStorage.getItem(KEY);
const auth = () => ({ Authorization: `Bearer ${token()}` });
const enc = encodeURIComponent;

function setError(err) {
  $('#error').textContent = err ? describe(err) : '';
}

function signedOut() {
  clearInterval(timer);
  show($('#console'), false);
  show($('#signin'));
  $('#token').focus();
}

$('#signin').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $('#token').value);
  $('#token').value = '';
  begin();
});

$('#signout').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  signedOut();
});

function begin() {
  show($('#signin'), false);
  show($('#console'));
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

async function refresh() {
  try {
    const { events } = await api('GET', '/api/v1/admin/admission', { headers: auth() });
    setError(null);
    show($('#empty'), events.length === 0);
    for (const view of events) render(view);
    $('#updated').textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  } catch (err) {
    setError(err);
    if (err instanceof ApiError && err.status === 401) {
      sessionStorage.removeItem(KEY);
      signedOut();
    }
  }
}

function salesPerSecond(id, sold) {
  const now = Date.now();
  const list = samples.get(id) ?? [];
  list.push([now, sold]);
  while (list.length > 2 && now - list[0][0] > SALES_WINDOW_MS) list.shift();
  samples.set(id, list);
  const [t0, s0] = list[0];
  return now > t0 ? ((sold - s0) * 1000) / (now - t0) : 0;
}

const FIELDS = [
  ['stock', 'Stock'], ['sold', 'Sold'], ['remaining', 'Remaining'], ['sales', 'Sales / s'],
  ['waiting', 'Waiting'], ['active', 'Active'], ['activeCapacity', 'Capacity'],
  ['admitted', 'Admitted'], ['admittedPerMinute', 'Admitted / min'], ['rate', 'Release limit'],
];

/** One event's card, made once (so inputs keep what is typed) and updated. */
function card(id) {
  if (cards.has(id)) return cards.get(id);
  const root = element('section', { className: 'card event' });
  root.dataset.event = id;
  const head = element('h2', {}, id);
  const badge = element('span', { className: 'badge' });
  head.append(' ', badge);
  const dl = element('dl', { className: 'numbers' });
  const values = {};
  for (const [key, label] of FIELDS) {
    const dd = element('dd');
    dd.dataset.field = key;
    values[key] = dd;
    const row = element('div');
    row.append(element('dt', {}, label), dd);
    dl.append(row);
  }
  const pause = element('button', { type: 'button', className: 'pause' });
  const queueAll = element('button', { type: 'button', className: 'queue-all danger' });
  const rate = numberForm('Release rate (per minute, 0 = no limit)', 'rate', 0, (v) => change(id, { releaseRatePerMinute: v }));
  const capacity = numberForm('Active capacity', 'capacity', 1, (v) => change(id, { activeCapacity: v }));
  pause.addEventListener('click', () => change(id, { paused: pause.dataset.paused !== 'true' }));
  queueAll.addEventListener('click', () => change(id, { queueAll: queueAll.dataset.on !== 'true' }));
  const controls = element('div', { className: 'controls' });
  controls.append(element('div', { className: 'row' }), rate, capacity);
  controls.firstElementChild.append(pause, queueAll);
  root.append(head, dl, controls);
  $('#events').append(root);
  const made = { root, badge, values, pause, queueAll };
  cards.set(id, made);
  return made;
}

function numberForm(label, name, min, apply) {
  const form = element('form', { className: 'row' });
  const inputId = `${name}-${Math.random().toString(36).slice(2)}`;
  const input = element('input', { type: 'number', min: String(min), required: true, id: inputId, name });
  form.append(element('label', { htmlFor: inputId }, label), input, element('button', { type: 'submit' }, 'Set'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply(Number(input.value));
  });
  return form;
}

function render(view) {
  const c = card(view.eventId);
  const state = view.queueAll ? 'QUEUE EVERYONE' : view.paused ? 'PAUSED' : 'OPEN';
  c.badge.textContent = state;
  c.badge.dataset.state = state;
  c.root.dataset.state = state;
  const shown = {
    ...view,
    sales: salesPerSecond(view.eventId, view.sold).toFixed(1),
    rate: view.releaseRatePerMinute === 0 ? 'none' : `${view.releaseRatePerMinute} / min`,
  };
  for (const [key] of FIELDS) c.values[key].textContent = String(shown[key]);
  c.pause.dataset.paused = String(view.paused);
  c.pause.textContent = view.paused ? 'Resume admission' : 'Pause admission';
  c.queueAll.dataset.on = String(view.queueAll);
  c.queueAll.textContent = view.queueAll ? 'Stop queueing everyone' : 'Queue everyone (emergency)';
}

async function change(id, body) {
  try {
    const view = await api('POST', `/api/v1/admin/events/${enc(id)}/admission`, { headers: auth(), body });
    setError(null);
    render(view);
  } catch (err) {
    setError(err);
  }
}

if (token()) begin();
else signedOut();
