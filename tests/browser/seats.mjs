// Two buyers race for one seat on the seat map: one holds it, the other
// sees it HELD within a second; the hold lapses (the server runs with a
// short --hold-ttl) and the seat reads AVAILABLE again. Then a buyer adds
// points, holds, pays, and everyone sees the seat CONFIRMED; the operator
// console shows the concert's seat paid and its sales per second move.
import {
  ADMIN, HOLD_TTL_MS, context, data, must, nonce, shot, text, visible, watchErrors,
} from './lib.mjs';

export const name = 'seat map: HELD within a second, AVAILABLE after the hold lapses, pay';

const seat = (n) => `#seatmap button[data-seat="${n}"]`;

async function buyer(browser, errors, concertId, userId, phone = false) {
  const ctx = await context(browser, { phone });
  const page = await ctx.newPage();
  watchErrors(page, errors);
  await page.goto(`/events/${concertId}`);
  await page.fill('#user-id', userId);
  await page.click('#enter button[type=submit]');
  await visible(page, '#active');
  await data(page, seat(7), 'status', 'AVAILABLE');
  return { ctx, page };
}

export async function run(browser, errors) {
  const concertId = `bc-${nonce}`;
  await must('POST', '/api/v1/admin/concerts', {
    admin: true,
    body: {
      concertId, name: 'Winter tour', activeCapacity: 10, activeTtlSeconds: 300,
      schedules: [{ scheduleId: 's1', date: '2026-12-24', seatCount: 50, price: 1000 }],
    },
  }, 201);
  const alice = await buyer(browser, errors, concertId, 'alice');
  const bob = await buyer(browser, errors, concertId, 'bob', true);

  // Both go for seat 7; exactly one gets it.
  await Promise.all([alice.page.click(seat(7)), bob.page.click(seat(7))]);
  const holders = [];
  for (const b of [alice, bob]) {
    if (await b.page.locator('#hold').isVisible()) holders.push(b);
  }
  const waitHold = async () => {
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      const held = [];
      for (const b of [alice, bob]) if (await b.page.locator('#hold').isVisible()) held.push(b);
      if (held.length) return held;
      await alice.page.waitForTimeout(50);
    }
    return [];
  };
  const held = holders.length ? holders : await waitHold();
  if (held.length !== 1) throw new Error(`${held.length} buyers hold seat 7, expected exactly 1`);
  const [winner] = held;
  const loser = winner === alice ? bob : alice;
  const heldAt = Date.now();
  // The other sees it HELD within a second of the hold.
  await data(loser.page, seat(7), 'status', 'HELD', 1000);
  const sawIn = Date.now() - heldAt;
  await shot(winner.page, 'seat-map-held');
  await shot(loser.page, 'seat-map-held');
  // The loser was told why, in the contract's words (a click on a seat
  // that was taken), or its click never reached a free seat.
  const told = (await loser.page.textContent('#error')).trim();
  if (told && !told.startsWith('Seat taken')) throw new Error(`the loser was told ${JSON.stringify(told)}`);

  // The hold lapses: the seat is AVAILABLE again for both.
  await data(loser.page, seat(7), 'status', 'AVAILABLE', HOLD_TTL_MS + 3000);
  await data(winner.page, seat(7), 'status', 'AVAILABLE', 3000);
  await text(winner.page, '#error', 'Hold expired: the hold of seat 7 ran out; choose a seat again', 3000);

  // Paying: not enough points is said plainly, then points are added.
  await loser.page.click(seat(8));
  await visible(loser.page, '#hold');
  await loser.page.click('#pay');
  await text(loser.page, '#error', 'Not enough points: balance 0 is below the price 1000');
  await loser.page.fill('#charge-amount', '5000');
  await loser.page.click('#charge button[type=submit]');
  await text(loser.page, '#balance', 5000);
  // The console, open before the payment, reads the concert's seats.
  const desk = await context(browser);
  const admin = await desk.newPage();
  watchErrors(admin, errors);
  await admin.goto('/admin');
  await admin.evaluate((t) => sessionStorage.setItem('ticketbench:admin-token', t), ADMIN);
  await admin.reload();
  const card = `section.event[data-event="${concertId}"]`;
  const field = (f) => `${card} dd[data-field="${f}"]`;
  await data(admin, card, 'kind', 'concert');
  await text(admin, `${card} .kind`, 'Concert');
  await text(admin, field('stock'), 50);
  await text(admin, field('sold'), 0);
  await text(admin, field('sales'), '0.0');
  await loser.page.click('#pay');
  await text(loser.page, '#result-status', 'CONFIRMED');
  await shot(loser.page, 'seat-paid');
  await data(winner.page, seat(8), 'status', 'CONFIRMED', 2000);
  await text(admin, field('sold'), 1, 3000);
  await text(admin, field('remaining'), 49);
  const sales = Number(await admin.textContent(field('sales')));
  if (!(sales > 0)) throw new Error(`the console shows ${sales} seats paid per second just after a payment`);
  await shot(admin, 'console-concert');
  await alice.ctx.close();
  await bob.ctx.close();
  await desk.close();
  return `the other buyer saw seat 7 HELD ${sawIn} ms after the hold`;
}
