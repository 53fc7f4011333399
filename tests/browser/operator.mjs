// The operator pauses admission from the console: the buyers' positions
// stop and their pages say paused (one page follows by SSE, one by
// polling, its stream blocked); on resume admission goes on in entry
// order. Release rate and capacity are set live from the console too.
import {
  ADMIN, context, enter, must, nonce, phoneShot, shot, stays, stored, text, visible, watchErrors, data,
} from './lib.mjs';

export const name = 'operator: pause stops the line and says so, resume admits in order';

async function buyer(browser, errors, eventId, userId, { blockStream = false } = {}) {
  const ctx = await context(browser);
  if (blockStream) await ctx.route('**/api/v1/queue/stream**', (route) => route.abort());
  const page = await ctx.newPage();
  watchErrors(page, errors);
  await page.goto(`/events/${eventId}`);
  await page.fill('#user-id', userId);
  await page.press('#user-id', 'Enter');
  await visible(page, '#waiting');
  return { ctx, page };
}

export async function run(browser, errors) {
  const eventId = `bo-${nonce}`;
  await must('POST', '/api/v1/admin/events', {
    admin: true,
    body: { eventId, stock: 10, activeCapacity: 1, activeTtlSeconds: 120 },
  }, 201);
  const first = (await enter(eventId, 'first')).token;
  const b1 = await buyer(browser, errors, eventId, 'b1');
  const b2 = await buyer(browser, errors, eventId, 'b2', { blockStream: true });
  await text(b1.page, '#position', 1);
  await text(b2.page, '#position', 2);
  await text(b2.page, '#link', 'Updating every few seconds.');

  const desk = await context(browser);
  const admin = await desk.newPage();
  watchErrors(admin, errors);
  await admin.goto('/admin');
  // A wrong token is refused in the contract's words, and not kept.
  await admin.fill('#token', 'wrong');
  await admin.press('#token', 'Enter');
  await text(admin, '#error', 'Not signed in: admin bearer token is wrong');
  await visible(admin, '#signin');
  await admin.fill('#token', ADMIN);
  await admin.press('#token', 'Enter');
  const card = `section.event[data-event="${eventId}"]`;
  await visible(admin, card);
  await text(admin, `${card} dd[data-field="waiting"]`, 2);
  if (admin.url().includes(ADMIN)) throw new Error('the admin token is in the URL');

  await admin.click(`${card} button.pause`);
  await data(admin, card, 'state', 'PAUSED');
  await visible(b1.page, '#paused');
  await visible(b2.page, '#paused');
  await text(b1.page, '#wait', 'paused');
  // The ACTIVE user buys: a slot is free, but nobody moves while paused.
  await must('POST', '/api/v1/tickets/reserve', { token: first, body: { eventId, quantity: 1 } });
  await Promise.all([stays(b1.page, 1, 1500), stays(b2.page, 2, 1500)]);
  await text(admin, `${card} dd[data-field="active"]`, 0);
  await shot(b1.page, 'waiting-room-paused');
  await phoneShot(browser, errors, `/events/${eventId}`, 'waiting-room-paused', {
    storage: await stored(b1.page, 'ticketbench:'),
    ready: async (p) => {
      await visible(p, '#paused');
      await text(p, '#position', 1);
    },
  });
  await shot(admin, 'console');

  await admin.click(`${card} button.pause`);
  await data(admin, card, 'state', 'OPEN');
  // In entry order: b1 first, while b2 still waits, one place ahead.
  await visible(b1.page, '#active');
  await text(b2.page, '#position', 1);
  await visible(b2.page, '#paused', { visible: false });
  if (await b2.page.locator('#active').isVisible()) throw new Error('b2 admitted with b1');

  // Capacity and release rate, live from the console.
  await admin.fill(`${card} input[name=capacity]`, '2');
  await admin.press(`${card} input[name=capacity]`, 'Enter');
  await text(admin, `${card} dd[data-field="activeCapacity"]`, 2);
  await visible(b2.page, '#active');
  await admin.fill(`${card} input[name=rate]`, '30');
  await admin.press(`${card} input[name=rate]`, 'Enter');
  await text(admin, `${card} dd[data-field="rate"]`, '30 / min');
  await admin.click(`${card} button.queue-all`);
  await data(admin, card, 'state', 'QUEUE EVERYONE');
  const phone = await context(browser, { phone: true });
  const small = await phone.newPage();
  await small.goto('/admin');
  await small.evaluate((t) => sessionStorage.setItem('ticketbench:admin-token', t), ADMIN);
  await small.reload();
  await visible(small, card);
  await shot(small, 'console');
  for (const c of [b1.ctx, b2.ctx, desk, phone]) await c.close();
}
