// What every page shares: calls to the API, the contract's errors in
// words, and the formatting of times.

/** A refused request, as the contract words it: `{error, message}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves to the JSON answer, rejects with an ApiError. */
export async function api(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'UNREACHABLE', 'the server could not be reached; check the connection');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    throw new ApiError(res.status, data?.error ?? `HTTP ${res.status}`, data?.message ?? res.statusText);
  }
  return data;
}

// The contract's error codes, as a person would say them.
const WORDS = {
  BAD_REQUEST: 'Not accepted',
  UNAUTHORIZED: 'Not signed in',
  NOT_ACTIVE: 'Not your turn',
  NOT_FOUND: 'Not found',
  SOLD_OUT: 'Sold out',
  LIMIT_EXCEEDED: 'Limit reached',
  SEAT_TAKEN: 'Seat taken',
  ALREADY_EXISTS: 'Already exists',
  INSUFFICIENT_POINTS: 'Not enough points',
  HOLD_EXPIRED: 'Hold expired',
  PAYLOAD_TOO_LARGE: 'Too large',
  RATE_LIMITED: 'Too many requests, slow down',
  UNAVAILABLE: 'Temporarily unavailable',
  METHOD_NOT_ALLOWED: 'Not allowed',
  INTERNAL: 'Something went wrong on our side',
  UNREACHABLE: 'Offline',
};

/** An error in words: "Sold out: requested 1, 0 left". */
export function describe(err) {
  if (err instanceof ApiError) return `${WORDS[err.code] ?? err.code}: ${err.message}`;
  return String(err?.message ?? err);
}

export const $ = (selector) => document.querySelector(selector);

export function show(el, on = true) {
  el.hidden = !on;
}

/** `95` -> "1 min 35 s"; `40` -> "40 s". */
export function duration(secs) {
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** How far back the server's estimates are compared. */
const ESTIMATES_WINDOW_MS = 60_000;

/**
 * The wait to show, from the server's estimates of it so far
 * (`[{at, secs}]`, `at` in ms on this device's clock, oldest first). The
 * server gives one number, from the admission rate it saw lately; how much
 * its estimates of the last minute disagree, each counted down to `now`,
 * is how uncertain it is. When they agree (within a fifth, or 10 s) the
 * wait is said as one figure; otherwise as the range they span. Until
 * three have been seen the disagreement is unknown, and the first
 * estimate (the rate barely seen) gets a wide band.
 */
export function waitText(estimates, now) {
  const recent = estimates.filter((e) => now - e.at <= ESTIMATES_WINDOW_MS);
  if (recent.length === 0) return 'not known yet';
  const projected = recent.map((e) => Math.max(0, e.secs - (now - e.at) / 1000));
  const latest = projected[projected.length - 1];
  let low = Math.min(...projected);
  let high = Math.max(...projected);
  if (recent.length < 3) {
    low = Math.min(low, latest * 0.7);
    high = Math.max(high, latest * 1.5);
  }
  if (high <= 0) return 'any moment now';
  if (high < 20) return 'under 30 s';
  if (high - low <= Math.max(10, high / 5)) return `about ${duration(latest)}`;
  return `${duration(Math.floor(low))} to ${duration(Math.ceil(high))}`;
}

export function element(tag, props = {}, text) {
  const el = document.createElement(tag);
  Object.assign(el, props);
  if (text !== undefined) el.textContent = text;
  return el;
}
