// The live dashboard of a scaling run (`loadgen scale --dashboard`),
// against the suite's server as a one-instance "deployment" (--fleet-cmd,
// --hosts-cmd): the page names each step as it starts (the capacity probe,
// then the rates tried, each on 1 host), shows the scaling run's progress
// line, and links the HTML report at the end, a self-contained page with
// the scaling plot inline.
import { join } from 'node:path';
import { ADMIN, BASE, BACKEND, OUT, phoneShot, shot } from './lib.mjs';
import { inlineReport, withDashboard } from './dashboard.mjs';

export const name = 'dashboard: a scaling run\'s steps named as they start, then its HTML report';

export async function run(browser, errors) {
  const args = [
    'scale', '--fleet-cmd', 'true', '--hosts-cmd', `echo ${BASE}`,
    '--instances', '1', '--repeats', '1', '--quick', '--step-secs', '1',
    '--warmup-secs', '0', '--max-steps', '2', '--no-verify', '--max-secs', '60',
    // The page, not the server's speed, is under test: loose bounds let a
    // broker slowed by the suites before it still pass a rate, so the
    // report has its scaling plot to check (1 s steps on a busy machine
    // fell short of 95% of the offered rate: 112/s of 118/s).
    '--p95-bound-ms', '2000', '--min-achieved', '0.5', '--max-error-rate', '0.05',
    '--admin-token', ADMIN, '--out', join(OUT, `scale-${BACKEND}`),
  ];
  return withDashboard(browser, errors, args, {}, async ({ base, ctx, page }) => {
    await page.waitForFunction(() => document.body.dataset.done === 'true', null, { timeout: 75_000 });
    // eslint-disable-next-line no-undef
    const labels = await page.evaluate(() => stages.map((s) => s.label));
    if (labels.length < 2 || !labels.every((l) => l.includes('1 host(s)'))) {
      throw new Error(`stages ${JSON.stringify(labels)}: expected the probe and at least one rate, each on 1 host`);
    }
    const status = await page.textContent('#status');
    if (!/instance/.test(status ?? '')) {
      throw new Error(`the status line said "${status}", not the scaling run's progress`);
    }
    await inlineReport(ctx, page, base);
    await shot(page, 'dashboard-scale-done');
    await phoneShot(browser, errors, base, 'dashboard-scale-done', {
      ready: (p) => p.waitForFunction(() => document.body.dataset.done === 'true', null, { timeout: 10_000 }),
    });
    return `stages: ${labels.map((l) => l.split(': ').slice(1).join(': ')).join(' | ')}`;
  });
}
