// One event's waiting room: join the line, follow the place live (SSE,
// polling when SSE is blocked), then buy (an event's stock) or choose,
// hold and pay a seat (a concert). The entry (user id, token) is kept in
// localStorage, so a reload keeps the place.
import { api, ApiError, describe, $, show, duration, waitText, element } from '/assets/common.js';

const eventId = decodeURIComponent(location.pathname.split('/')[2] ?? '');
const enc = encodeURIComponent;
const storeKey = `ticketbench:entry:${eventId}`;
/** How often the status is polled when the live stream is unavailable. */
const POLL_MS = 2000;
/** How often the seat map is read again while choosing. */
const SEATMAP_MS = 500;
/** Stream errors in a row after which polling takes over. */
const STREAM_TRIES = 3;

let event = null;
let isConcert = false;
let entry = load();
let source = null;
let streamErrors = 0;
let pollTimer = null;
let activeTimer = null;
let seatTimer = null;
let holdTimer = null;
let schedule = null;
/** The server's wait estimates while waiting: `[{at, secs}]`, oldest first. */
let estimates = [];

function load() {
  try {
    return JSON.parse(localStorage.getItem(storeKey)) ?? null;
  } catch {
    return null;
  }
}

function save() {
  if (entry) localStorage.setItem(storeKey, JSON.stringify(entry));
  else localStorage.removeItem(storeKey);
}

const tokenHeader = () => ({ 'X-Queue-Token': entry.token });

function setError(err) {
  $('#error').textContent = err ? describe(err) : '';
}

function link(text) {
  $('#link').textContent = text;
}

async function start() {
  $('#forget').addEventListener('click', forget);
  $('#enter').addEventListener('submit', join);
  $('#buy').addEventListener('submit', buy);
  $('#charge').addEventListener('submit', charge);
  $('#pay').addEventListener('click', pay);
  try {
    event = await api('GET', `/api/v1/events/${enc(eventId)}`);
  } catch (e) {
    setError(e);
    return;
  }
  document.title = `Waiting room: ${event.name ?? event.eventId}`;
  $('#title').textContent = event.name ?? event.eventId;
  try {
    await api('GET', `/api/v1/concerts/${enc(eventId)}/schedules`);
    isConcert = true;
  } catch {
    isConcert = false;
  }
  if (!isConcert) $('#stock').textContent = `${event.remaining} of ${event.stock} tickets left`;
  if (entry?.token) {
    follow();
  } else {
    show($('#enter'));
    $('#user-id').focus();
  }
}

async function join(e) {
  e.preventDefault();
  setError(null);
  const userId = $('#user-id').value.trim();
  try {
    const r = await api('POST', '/api/v1/queue/enter', { body: { eventId, userId } });
    entry = { userId, token: r.token, firstPosition: r.position };
    save();
    show($('#enter'), false);
    follow();
  } catch (err) {
    setError(err);
  }
}

/** Forgets the entry on this device (the server keeps it). */
function forget() {
  closeStream();
  entry = null;
  save();
  location.reload();
}

/** Reads the entry's state once, then follows it while it waits. */
async function follow() {
  show($('#forget'));
  document.querySelectorAll('.user').forEach((el) => { el.textContent = entry.userId; });
  const view = await refresh();
  if (view?.status === 'WAITING') openStream();
}

/** The entry's status now; shows it. `null` when it could not be read. */
async function refresh() {
  try {
    const view = await api('GET', '/api/v1/queue/status', { headers: tokenHeader() });
    setError(null);
    apply(view);
    return view;
  } catch (e) {
    setError(e);
    if (e instanceof ApiError && e.status === 401) {
      // The token names no entry here (or expired): start again.
      entry = null;
      save();
      show($('#waiting'), false);
      show($('#enter'));
    }
    return null;
  }
}

function openStream() {
  if (!('EventSource' in window)) {
    startPolling();
    return;
  }
  // The browser sends Last-Event-ID itself when it reconnects this stream.
  source = new EventSource(`/api/v1/queue/stream?token=${enc(entry.token)}`);
  let opened = false;
  source.addEventListener('open', () => {
    opened = true;
    link('Live.');
  });
  source.addEventListener('position', (m) => {
    streamErrors = 0;
    const d = JSON.parse(m.data);
    apply({
      status: 'WAITING',
      position: d.position,
      estimatedWaitSeconds: d.estimatedWaitSeconds,
      paused: d.paused,
      nowServing: Number(m.lastEventId),
    });
  });
  // The stream ends with the entry's turn (or its end): read it plainly.
  const ended = () => {
    closeStream();
    refresh();
  };
  source.addEventListener('active', ended);
  source.addEventListener('status', ended);
  source.addEventListener('error', () => {
    streamErrors += 1;
    // A stream that never opened is blocked (a proxy, a cap): poll at once.
    if (!opened || source.readyState === EventSource.CLOSED || streamErrors >= STREAM_TRIES) {
      closeStream();
      startPolling();
    } else {
      link('Reconnecting…');
    }
  });
}

function closeStream() {
  if (source) source.close();
  source = null;
}

function startPolling() {
  link('Updating every few seconds.');
  clearInterval(pollTimer);
  pollTimer = setInterval(async () => {
    const view = await refresh();
    if (view && view.status !== 'WAITING') clearInterval(pollTimer);
  }, POLL_MS);
}

/** Shows a queue view: `{status, position, estimatedWaitSeconds, paused, nowServing}`. */
function apply(view) {
  show($('#waiting'), view.status === 'WAITING');
  if (view.status === 'WAITING') {
    showWaiting(view);
  } else if (view.status === 'ACTIVE') {
    showActive(view);
  } else {
    showOver(view.status);
  }
}

function showWaiting(view) {
  const first = Math.max(entry.firstPosition ?? view.position, view.position);
  if (first !== entry.firstPosition) {
    entry.firstPosition = first;
    save();
  }
  $('#position').textContent = String(view.position);
  $('#now-serving').textContent = String(view.nowServing);
  $('#my-number').textContent = String(view.nowServing + view.position);
  show($('#paused'), view.paused);
  if (view.paused) {
    // A paused line's estimates say nothing of the wait after it resumes.
    estimates = [];
  } else {
    estimates.push({ at: Date.now(), secs: view.estimatedWaitSeconds });
    estimates = estimates.slice(-20);
  }
  $('#wait').textContent = view.paused ? 'paused' : waitText(estimates, Date.now());
  // Share of the line passed since this device joined it.
  $('#progress').value = first > 1 ? (first - view.position) / (first - 1) : 0;
  $('#waiting').dataset.paused = String(view.paused);
}

function showActive(view) {
  if (entry.result) {
    showResult();
    return;
  }
  show($('#active'));
  clearInterval(activeTimer);
  // The server's deadline (activeRemainingSeconds), counted down on this
  // device's clock from when it was read: right even when the turn came
  // while the page was closed. A server without it: a whole turn.
  const until = Date.now() + (view.activeRemainingSeconds ?? event.activeTtlSeconds) * 1000;
  const tick = () => {
    const left = (until - Date.now()) / 1000;
    $('#remaining').textContent = duration(left);
    if (left <= 0) {
      clearInterval(activeTimer);
      refresh();
    }
  };
  tick();
  activeTimer = setInterval(tick, 1000);
  if (isConcert) {
    show($('#concert'));
    loadSchedules();
    loadPoints();
    if (entry.hold) showHold();
  } else {
    $('#quantity').max = String(event.perUserLimit);
    show($('#buy'));
    $('#buy-button').focus();
  }
}

function showOver(status) {
  clearInterval(activeTimer);
  clearInterval(seatTimer);
  show($('#active'), false);
  if (entry.result) {
    showResult();
    return;
  }
  show($('#over'));
  if (status === 'EXPIRED') {
    $('#over-title').textContent = 'Your turn has ended';
    $('#over-detail').textContent = 'The active time of this place ran out before a purchase.';
  } else {
    $('#over-title').textContent = 'This place was used';
    $('#over-detail').textContent = 'A purchase was already made with it.';
  }
}

// --- an event's stock ---------------------------------------------------

async function buy(e) {
  e.preventDefault();
  setError(null);
  $('#buy-button').disabled = true;
  const quantity = Number($('#quantity').value);
  try {
    const r = await api('POST', '/api/v1/tickets/reserve', {
      headers: tokenHeader(),
      body: { eventId, quantity },
    });
    entry.result = { kind: 'ticket', reservationId: r.reservationId, status: r.status, quantity };
    save();
    showResult();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'SOLD_OUT') {
      entry.result = { kind: 'ticket', status: 'SOLD_OUT', detail: err.message };
      save();
      showResult();
    } else {
      setError(err);
      $('#buy-button').disabled = false;
    }
  }
}

/** Shows the purchase; a PENDING reservation is read until CONFIRMED. */
async function showResult() {
  clearInterval(activeTimer);
  clearInterval(seatTimer);
  show($('#active'), false);
  show($('#waiting'), false);
  show($('#result'));
  const r = entry.result;
  const status = $('#result-status');
  status.textContent = r.status;
  status.dataset.status = r.status;
  if (r.status === 'SOLD_OUT') {
    $('#result-detail').textContent = `Sold out: ${r.detail}. Nothing was charged.`;
    return;
  }
  if (r.kind === 'seat') {
    $('#result-detail').textContent = `Seat ${r.seatNumber} on ${r.scheduleId} is yours. Paid ${r.amount} points; your balance is ${r.balance}.`;
    return;
  }
  $('#result-detail').textContent = r.status === 'CONFIRMED'
    ? `${r.quantity} ticket(s), reservation ${r.reservationId}: recorded for good.`
    : `${r.quantity} ticket(s), reservation ${r.reservationId}: accepted, being recorded…`;
  const until = Date.now() + 30_000;
  while (entry.result.status === 'PENDING' && Date.now() < until) {
    await new Promise((done) => setTimeout(done, 300));
    try {
      const now = await api('GET', `/api/v1/tickets/${enc(r.reservationId)}`);
      if (now.status !== 'PENDING') {
        entry.result.status = now.status;
        save();
        showResult();
        return;
      }
    } catch (err) {
      setError(err);
    }
  }
}

// --- a concert's seat map -----------------------------------------------

async function loadSchedules() {
  try {
    const list = await api('GET', `/api/v1/concerts/${enc(eventId)}/schedules`);
    const box = $('#schedules');
    box.replaceChildren(...list.map((s) => {
      const b = element('button', { type: 'button' }, `${s.date} (${s.availableSeats} free)`);
      b.dataset.schedule = s.scheduleId;
      b.addEventListener('click', () => chooseSchedule(s.scheduleId));
      return b;
    }));
    if (list.length === 1 || entry.hold) chooseSchedule(entry.hold?.scheduleId ?? list[0].scheduleId);
  } catch (err) {
    setError(err);
  }
}

function chooseSchedule(id) {
  schedule = id;
  document.querySelectorAll('#schedules button').forEach((b) => {
    b.setAttribute('aria-pressed', String(b.dataset.schedule === id));
  });
  show($('#seatmap-area'));
  clearInterval(seatTimer);
  loadSeats();
  seatTimer = setInterval(loadSeats, SEATMAP_MS);
}

async function loadSeats() {
  let seats;
  try {
    seats = await api('GET', `/api/v1/concerts/${enc(eventId)}/schedules/${enc(schedule)}/seats`);
  } catch (err) {
    setError(err);
    return;
  }
  const map = $('#seatmap');
  // Update in place, so keyboard focus stays on the focused seat.
  if (map.children.length !== seats.length) {
    map.replaceChildren(...seats.map((s) => {
      const b = element('button', { type: 'button' }, String(s.seatNumber));
      b.dataset.seat = String(s.seatNumber);
      b.addEventListener('click', () => hold(s.seatNumber, Number(b.dataset.price)));
      return b;
    }));
  }
  seats.forEach((s, i) => {
    const b = map.children[i];
    const mine = entry.hold && entry.hold.scheduleId === schedule && entry.hold.seatNumber === s.seatNumber;
    b.className = `seat ${s.status}${mine ? ' mine' : ''}`;
    b.dataset.status = s.status;
    b.dataset.price = String(s.price);
    b.disabled = s.status !== 'AVAILABLE';
    b.setAttribute('aria-label', `Seat ${s.seatNumber}, ${s.status}${mine ? ' (yours)' : ''}, ${s.price} points`);
  });
}

async function hold(seatNumber, price) {
  setError(null);
  try {
    const r = await api('POST', `/api/v1/concerts/${enc(eventId)}/reservations`, {
      headers: tokenHeader(),
      body: { scheduleId: schedule, seatNumber },
    });
    entry.hold = { reservationId: r.reservationId, scheduleId: schedule, seatNumber, price, expiresAt: r.expiresAt };
    save();
    showHold();
  } catch (err) {
    setError(err);
  }
  loadSeats();
}

function showHold() {
  const h = entry.hold;
  show($('#hold'));
  $('#hold-seat').textContent = `${h.seatNumber} (${h.scheduleId})`;
  $('#hold-price').textContent = String(h.price);
  clearInterval(holdTimer);
  const tick = () => {
    const left = (Date.parse(h.expiresAt) - Date.now()) / 1000;
    $('#hold-left').textContent = duration(left);
    if (left <= 0) {
      clearInterval(holdTimer);
      entry.hold = null;
      save();
      show($('#hold'), false);
      setError(new ApiError(410, 'HOLD_EXPIRED', `the hold of seat ${h.seatNumber} ran out; choose a seat again`));
    }
  };
  tick();
  holdTimer = setInterval(tick, 250);
  $('#pay').focus();
}

async function loadPoints() {
  try {
    const p = await api('GET', `/api/v1/points?userId=${enc(entry.userId)}`);
    $('#balance').textContent = String(p.balance);
  } catch (err) {
    setError(err);
  }
}

async function charge(e) {
  e.preventDefault();
  setError(null);
  try {
    const p = await api('POST', '/api/v1/points/charge', {
      body: { userId: entry.userId, amount: Number($('#charge-amount').value) },
    });
    $('#balance').textContent = String(p.balance);
  } catch (err) {
    setError(err);
  }
}

async function pay() {
  setError(null);
  const h = entry.hold;
  if (!h) return;
  $('#pay').disabled = true;
  try {
    // One key per hold: a retried click is the same payment, charged once.
    const p = await api('POST', '/api/v1/payments', {
      headers: { ...tokenHeader(), 'Idempotency-Key': `pay-${h.reservationId}` },
      body: { reservationId: h.reservationId },
    });
    clearInterval(holdTimer);
    entry.result = {
      kind: 'seat', status: 'CONFIRMED', seatNumber: h.seatNumber, scheduleId: h.scheduleId,
      amount: p.amount, balance: p.balance,
    };
    entry.hold = null;
    save();
    showResult();
  } catch (err) {
    setError(err);
    if (err instanceof ApiError && err.code === 'HOLD_EXPIRED') {
      entry.hold = null;
      save();
      show($('#hold'), false);
    }
  } finally {
    $('#pay').disabled = false;
  }
}

start();
