// The live dashboard of a load run (`loadgen run --dashboard`): the page
// shows successes per second rising from nothing to the offered rate,
// second by second, and links the run's reports when it ends.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ADMIN, BASE, BACKEND, OUT, context, phoneShot, shot, text, watchErrors } from './lib.mjs';

export const name = 'dashboard: a run\'s TPS rising each second, then its report link';

const RATE = 40;
const SECONDS = 6;

/** Starts `loadgen ARGS` with a dashboard on a free port (`--quiet` for
 * the commands that have it: not `job`); `url` resolves to the
 * dashboard's address. */
export function loadgen(args, { quiet = true } = {}) {
  let said = '';
  const child = spawn(process.env.LOADGEN_BIN, [
    ...args, ...(quiet ? ['--quiet'] : []), '--dashboard', '127.0.0.1:0', '--dashboard-linger', '60',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no dashboard address within 60 s: ${said}`)), 60_000);
    child.stderr.on('data', (d) => {
      said += d;
      // The whole line: a chunk may end inside the address.
      const m = said.match(/live dashboard on (http:\/\/\S+\/)\n/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`loadgen exited ${code}: ${said}`)));
  });
  return { child, url, said: () => said };
}

/** Runs `loadgen ARGS` with its dashboard, opens the page in a fresh
 * context and hands `{ base, ctx, page }` to `body`, whose note it
 * returns; a failure says what the page and loadgen said; loadgen is
 * stopped at the end either way. */
export async function withDashboard(browser, errors, args, options, body) {
  const { child, url, said } = loadgen(args, options);
  let page;
  try {
    const base = await url;
    const ctx = await context(browser);
    page = await ctx.newPage();
    watchErrors(page, errors);
    await page.goto(base);
    const note = await body({ base, ctx, page });
    await ctx.close();
    return note;
  } catch (e) {
    const state = await page?.textContent('#state').catch(() => '?');
    throw new Error(`${e.message} (the page said "${state}"; loadgen said: ${said().trim()})`);
  } finally {
    child.kill('SIGTERM');
  }
}

/** The report the finished page links first ("HTML report"), fetched: one
 * page with its plots inline (no images to load), holding each of `must`. */
export async function inlineReport(ctx, page, base, must = []) {
  await text(page, '#links a', 'HTML report');
  const href = await page.getAttribute('#links a', 'href');
  const report = await ctx.request.get(new URL(href, base).href);
  const body = await report.text();
  const missing = must.filter((m) => !body.includes(m));
  if (!report.ok() || !body.includes('<svg') || body.includes('<img') || missing.length) {
    throw new Error(`the report ${href} answered ${report.status()}, not one page with its plots inline`
      + `${missing.length ? ` and ${JSON.stringify(missing)}` : ''}: ${body.slice(0, 80)}`);
  }
}

export async function run(browser, errors) {
  const args = [
    'run', '--host', BASE, '--admin-token', ADMIN, '--rate', String(RATE),
    '--duration', String(SECONDS), '--out', join(OUT, `loadgen-${BACKEND}`),
  ];
  return withDashboard(browser, errors, args, {}, async ({ base, ctx, page }) => {
    await page.waitForFunction(() => Number(document.body.dataset.seconds ?? 0) >= 3, null, { timeout: 30_000 });
    await shot(page, 'dashboard-running');
    await phoneShot(browser, errors, base, 'dashboard-running', {
      ready: (p) => p.waitForFunction(() => Number(document.body.dataset.seconds ?? 0) >= 1, null, { timeout: 10_000 }),
    });
    await page.waitForFunction(() => document.body.dataset.done === 'true', null, { timeout: (SECONDS + 30) * 1000 });
    // eslint-disable-next-line no-undef
    const tps = await page.evaluate(() => seconds.map((s) => s.tps));
    const peak = Math.max(...tps);
    if (tps.length < SECONDS || peak < RATE * 0.8) {
      throw new Error(`successes per second ${JSON.stringify(tps)}: expected ${SECONDS} seconds reaching ${RATE * 0.8}`);
    }
    await text(page, '#links a', 'HTML report');
    await text(page, '#links a:nth-of-type(2)', 'HTML report (goose)');
    await shot(page, 'dashboard-done');
    const phone = await context(browser, { phone: true });
    const small = await phone.newPage();
    await small.goto(base);
    await small.waitForFunction(() => document.body.dataset.done === 'true', null, { timeout: 10_000 });
    await shot(small, 'dashboard-done');
    await phone.close();
    // The run's own report is one self-contained page: opened, and its
    // plots are drawn inline.
    const href = await page.getAttribute('#links a', 'href');
    const own = await ctx.newPage();
    watchErrors(own, errors);
    await own.goto(new URL(href, base).href);
    await text(own, 'h1', `ticketbench report ${await own.textContent('h1 code')}`);
    const plots = await own.locator('svg').count();
    if (plots < 2) {
      throw new Error(`the run's report ${href} draws ${plots} plots inline, expected its TPS and latency`);
    }
    // goose's page loads its charts from a CDN, which this machine may
    // not reach: fetched, not opened.
    const gooseHref = await page.getAttribute('#links a:nth-of-type(2)', 'href');
    const report = await ctx.request.get(new URL(gooseHref, base).href);
    const body = await report.text();
    if (!report.ok() || !body.includes('Goose')) {
      throw new Error(`the report link ${gooseHref} answered ${report.status()}: ${body.slice(0, 80)}`);
    }
    return `successes per second ${tps.map((t) => t.toFixed(0)).join(', ')}`;
  });
}
