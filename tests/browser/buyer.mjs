// A buyer comes in by the home page and the waiting room, keyboard only:
// types the event id, then a user id; watches the position fall as those
// ahead buy, reloads and keeps the place, becomes ACTIVE while away (the
// page then shows the turn's true time left), buys, and sees PENDING turn
// into CONFIRMED; then a late buyer asking for more than is left sees
// SOLD_OUT.
import {
  context, data, enter, must, nonce, phoneShot, record, seen, shot, stored, text, visible, watchErrors,
} from './lib.mjs';

export const name = 'buyer: position falls, reload keeps the place, buy, CONFIRMED; SOLD_OUT after';

/** The event's active time (s), and how long the buyer's page is away. */
const TTL = 120;
const AWAY_MS = 2500;

/** "1 min 57 s" -> 117. */
function seconds(said) {
  const m = /^(?:(\d+) min )?(\d+) s$/.exec(said.trim());
  if (!m) throw new Error(`the time left reads ${JSON.stringify(said)}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2]);
}

export async function run(browser, errors) {
  const eventId = `bw-${nonce}`;
  await must('POST', '/api/v1/admin/events', {
    admin: true,
    body: { eventId, name: 'Spring live', stock: 5, perUserLimit: 2, activeCapacity: 1, activeTtlSeconds: TTL },
  }, 201);
  // Three ahead of the buyer: the first ACTIVE, two waiting.
  const ahead = [];
  for (const u of ['ahead-0', 'ahead-1', 'ahead-2']) ahead.push((await enter(eventId, u)).token);

  for (const phone of [false, true]) {
    const ctx = await context(browser, { phone });
    const page = await ctx.newPage();
    watchErrors(page, errors);
    await page.goto(`/events/${eventId}`);
    await shot(page, 'waiting-room-enter');
    await ctx.close();
  }

  // The home page, at both sizes.
  await phoneShot(browser, errors, '/', 'home', { ready: (p) => visible(p, '#event-id') });
  const ctx = await context(browser);
  const page = await ctx.newPage();
  watchErrors(page, errors);
  await page.goto('/');
  await shot(page, 'home');
  // Keyboard only: the event id field has focus; Enter goes to its
  // waiting room, where the user id field has focus; Enter joins.
  await page.keyboard.type(eventId);
  await page.keyboard.press('Enter');
  await page.waitForURL(`**/events/${eventId}`, { timeout: 10_000 });
  await visible(page, '#enter');
  await page.keyboard.type('buyer');
  await page.keyboard.press('Enter');
  await text(page, '#position', 3);
  await text(page, '#my-number', 4);
  await text(page, '#now-serving', 1);
  // One estimate of the wait so far, its uncertainty unknown: a range.
  const wait = await page.textContent('#wait');
  if (!/^\d.* to \d/.test(wait)) throw new Error(`the first wait reads "${wait}", expected a range`);
  await progressIs(page, 0);
  await shot(page, 'waiting-room');
  const phone = await context(browser, { phone: true });
  const small = await phone.newPage();
  watchErrors(small, errors);
  // The same entry on a phone-sized screen (its token, as a reload would).
  await small.goto(`/events/${eventId}`);
  const entry = await page.evaluate((k) => localStorage.getItem(k), `ticketbench:entry:${eventId}`);
  await small.evaluate(([k, v]) => localStorage.setItem(k, v), [`ticketbench:entry:${eventId}`, entry]);
  await small.reload();
  await text(small, '#position', 3);
  await shot(small, 'waiting-room');
  await phone.close();

  // Those ahead buy one by one; the page follows live.
  await must('POST', '/api/v1/tickets/reserve', { token: ahead[0], body: { eventId, quantity: 1 } });
  await text(page, '#position', 2);
  await progressIs(page, 0.5);
  await page.reload();
  await text(page, '#position', 2);
  // The bar counts from where this device joined, kept across the reload.
  await progressIs(page, 0.5);
  await visible(page, '#enter', { visible: false });
  await must('POST', '/api/v1/tickets/reserve', { token: ahead[1], body: { eventId, quantity: 1 } });
  await text(page, '#position', 1);
  await progressIs(page, 1);
  // The turn comes while the page is closed: back a few seconds later, it
  // shows the time left by the server's deadline, not a whole turn.
  await page.goto('about:blank');
  await must('POST', '/api/v1/tickets/reserve', { token: ahead[2], body: { eventId, quantity: 1 } });
  await page.waitForTimeout(AWAY_MS);
  await page.goto(`/events/${eventId}`);
  await visible(page, '#active');
  await visible(page, '#buy-button');
  const left = seconds(await page.textContent('#remaining'));
  // The server rounds up: 2.5 s into a 120 s turn is at most 118 s left.
  if (!(left <= TTL - 2 && left > TTL - 15)) {
    throw new Error(`the page shows ${left} s of the turn left, ${AWAY_MS} ms after a ${TTL} s turn began`);
  }
  await record(page, '#result-status');
  // The Buy button has focus once ACTIVE.
  await page.keyboard.press('Enter');
  await visible(page, '#result');
  await data(page, '#result-status', 'status', 'CONFIRMED');
  await text(page, '#result-status', 'CONFIRMED');
  const shown = await seen(page);
  if (shown[0] !== 'PENDING' || shown[shown.length - 1] !== 'CONFIRMED') {
    throw new Error(`the result read ${JSON.stringify(shown)}, expected PENDING then CONFIRMED`);
  }
  await shot(page, 'purchase-confirmed');
  await phoneShot(browser, errors, `/events/${eventId}`, 'purchase-confirmed', {
    storage: await stored(page, 'ticketbench:'),
    ready: (p) => text(p, '#result-status', 'CONFIRMED'),
  });
  // A reload shows the result, not the line.
  await page.reload();
  await text(page, '#result-status', 'CONFIRMED');
  const event = await must('GET', `/api/v1/events/${eventId}`);
  if (event.sold !== 4) throw new Error(`sold ${event.sold}, expected 4`);
  await ctx.close();

  // One ticket is left: a late buyer asking for two is told SOLD_OUT
  // plainly, and nothing is sold.
  const late = await context(browser);
  const latePage = await late.newPage();
  watchErrors(latePage, errors);
  await latePage.goto(`/events/${eventId}`);
  await visible(latePage, '#enter');
  await latePage.fill('#user-id', 'late');
  await latePage.keyboard.press('Enter');
  await visible(latePage, '#buy-button');
  await latePage.fill('#quantity', '2');
  await latePage.click('#buy-button');
  await data(latePage, '#result-status', 'status', 'SOLD_OUT');
  const detail = await latePage.textContent('#result-detail');
  if (!detail.includes('Nothing was charged')) throw new Error(`the sold-out result reads "${detail}"`);
  await shot(latePage, 'sold-out');
  const after = await must('GET', `/api/v1/events/${eventId}`);
  if (after.sold !== 4) throw new Error(`sold ${after.sold} after the refused purchase, expected 4`);
  await late.close();
}

/** The progress bar's value is `want` (of 1). */
async function progressIs(page, want) {
  const value = await page.$eval('#progress', (bar) => bar.value);
  if (Math.abs(value - want) > 1e-9) throw new Error(`the progress bar reads ${value}, expected ${want}`);
}
