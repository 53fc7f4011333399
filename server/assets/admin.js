// The operator's console: every event's numbers, read each second, and
// its admission controls. The admin token lives in sessionStorage (this
// tab only) and travels only in the Authorization header.
//
// A concert's waiting line is a queue of stock 0 whose sales are seat
// payments, which the line's numbers never count; so a concert's card
// takes its seats from the public seat maps instead (one read per
// schedule per refresh), and says it is a concert.
import { api, ApiError, describe, $, show, element } from '/assets/common.js';

const KEY = 'ticketbench:admin-token';
/** How often the numbers are read. */
const REFRESH_MS = 1000;
/** The window sales per second are measured over. */
const SALES_WINDOW_MS = 5000;

/** Seat maps read at most this often a second, over all concerts' dates. */
const SEAT_MAPS_PER_SECOND = 4;

let timer = null;
let busy = false;
let tick = 0;
/** Per concert: its last seat counts (kept when a read fails). */
const lastSeats = new Map();
const cards = new Map();
/** Per event: recent `[time, sold]` samples, for sales per second. */
const samples = new Map();
/** Per id: its schedules if a concert, null if an event (looked up once:
 * a concert's schedules are fixed when it is created). */
const concerts = new Map();

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
  // A slow answer skips a tick rather than piling reads up behind it.
  if (busy) return;
  busy = true;
  try {
    const { events } = await api('GET', '/api/v1/admin/admission', { headers: auth() });
    const looked = await Promise.allSettled(events.map(schedulesOf));
    const dates = looked.reduce((n, l) => n + (l.value?.length ?? 0), 0);
    // Seat maps are re-read so that at most SEAT_MAPS_PER_SECOND go out a
    // second: the console shares its address's request limit.
    const fresh = tick++ % Math.max(1, Math.ceil(dates / SEAT_MAPS_PER_SECOND)) === 0;
    const seats = await Promise.allSettled(events.map((view, i) => (
      fresh && looked[i].value ? concertSeats(view, looked[i].value) : lastSeats.get(view.eventId) ?? null)));
    setError(null);
    show($('#empty'), events.length === 0);
    events.forEach((view, i) => {
      // Not yet known to be a concert or an event: drawn on a later tick,
      // since a card keeps the kind it is first drawn with.
      if (looked[i].status === 'rejected') return;
      // A seat read that failed keeps the card's last counts.
      const counts = seats[i].status === 'fulfilled' ? seats[i].value : lastSeats.get(view.eventId) ?? null;
      if (looked[i].value && !counts) return; // a concert without counts yet
      if (counts) lastSeats.set(view.eventId, counts);
      render(view, counts);
    });
    $('#updated').textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  } catch (err) {
    setError(err);
    if (err instanceof ApiError && err.status === 401) {
      sessionStorage.removeItem(KEY);
      signedOut();
    }
  } finally {
    busy = false;
  }
}

/** A concert's schedules, or null for an event (404: no such concert). */
async function schedulesOf(view) {
  // Only a line of stock 0 may be a concert's: events are not asked about.
  if (view.stock !== 0) return null;
  const id = view.eventId;
  if (!concerts.has(id)) {
    try {
      concerts.set(id, await api('GET', `/api/v1/concerts/${enc(id)}/schedules`));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
      concerts.set(id, null);
    }
  }
  return concerts.get(id);
}

/** A concert's seats over all its `schedules`: `stock`
 * seats, `sold` paid (CONFIRMED), `held`, and `remaining` AVAILABLE. */
async function concertSeats(view, schedules) {
  const maps = await Promise.all(schedules.map((s) => api(
    'GET', `/api/v1/concerts/${enc(view.eventId)}/schedules/${enc(s.scheduleId)}/seats`,
  )));
  const seats = maps.flat();
  const count = (status) => seats.filter((seat) => seat.status === status).length;
  return {
    stock: seats.length,
    sold: count('CONFIRMED'),
    held: count('HELD'),
    remaining: count('AVAILABLE'),
  };
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

/** `[key, label for an event, label for a concert (absent: not shown)]`. */
const FIELDS = [
  ['stock', 'Stock', 'Seats'], ['sold', 'Sold', 'Seats paid'], ['remaining', 'Remaining', 'Seats available'],
  ['held', null, 'Seats held'], ['sales', 'Sales / s', 'Seats paid / s'],
  ['waiting', 'Waiting', 'Waiting'], ['active', 'Active', 'Active'], ['activeCapacity', 'Capacity', 'Capacity'],
  ['admitted', 'Admitted', 'Admitted'], ['admittedPerMinute', 'Admitted / min', 'Admitted / min'],
  ['rate', 'Release limit', 'Release limit'],
];

/** One event's (or concert's) card, made once (so inputs keep what is
 * typed) and updated. */
function card(id, concert) {
  if (cards.has(id)) return cards.get(id);
  const root = element('section', { className: 'card event' });
  root.dataset.event = id;
  root.dataset.kind = concert ? 'concert' : 'event';
  const head = element('h2');
  const badge = element('span', { className: 'badge' });
  head.append(element('span', { className: 'kind' }, concert ? 'Concert' : 'Event'), ' ', id, ' ', badge);
  const dl = element('dl', { className: 'numbers' });
  const values = {};
  for (const [key, eventLabel, concertLabel] of FIELDS) {
    const label = concert ? concertLabel : eventLabel;
    if (!label) continue;
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

/** Shows an event's admission view; a concert's with its `seats`. */
function render(view, seats) {
  const c = card(view.eventId, Boolean(seats));
  const state = view.queueAll ? 'QUEUE EVERYONE' : view.paused ? 'PAUSED' : 'OPEN';
  c.badge.textContent = state;
  c.badge.dataset.state = state;
  c.root.dataset.state = state;
  const shown = { ...view, ...seats };
  shown.sales = salesPerSecond(view.eventId, shown.sold).toFixed(1);
  shown.rate = view.releaseRatePerMinute === 0 ? 'none' : `${view.releaseRatePerMinute} / min`;
  for (const [key, dd] of Object.entries(c.values)) dd.textContent = String(shown[key]);
  c.pause.dataset.paused = String(view.paused);
  c.pause.textContent = view.paused ? 'Resume admission' : 'Pause admission';
  c.queueAll.dataset.on = String(view.queueAll);
  c.queueAll.textContent = view.queueAll ? 'Stop queueing everyone' : 'Queue everyone (emergency)';
}

async function change(id, body) {
  try {
    const view = await api('POST', `/api/v1/admin/events/${enc(id)}/admission`, { headers: auth(), body });
    setError(null);
    // The change is made and shown; the card's seat counts are the last
    // read, the next refresh reads them again.
    render(view, lastSeats.get(view.eventId) ?? null);
  } catch (err) {
    setError(err);
  }
}

if (token()) begin();
else signedOut();
