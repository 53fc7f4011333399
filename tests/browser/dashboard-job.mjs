// The live dashboard of the main job (`loadgen job --dashboard`), quick and
// without the scaling run: the page names both of the job's load runs
// (flash_sale, then hold_and_pay) as they start and links the job's HTML
// report at the end. The job starts its own embedded server (the page is
// under test, not a backend), so the scenario runs in the suite's embedded
// pass only.
import { dirname, join } from 'node:path';
import { BACKEND, OUT, shot } from './lib.mjs';
import { inlineReport, withDashboard } from './dashboard.mjs';

export const name = 'dashboard: the main job\'s load runs named as they start, then its HTML report';
export const backends = ['memory'];

export async function run(browser, errors) {
  const args = [
    'job', '--backend', 'memory', '--quick', '--no-scale', '--duration', '3',
    '--rate', '40', '--seat-rate', '10',
    '--server-bin', join(dirname(process.env.LOADGEN_BIN), 'ticket-server'),
    '--reports-dir', join(OUT, `job-${BACKEND}`),
  ];
  return withDashboard(browser, errors, args, { quiet: false }, async ({ base, ctx, page }) => {
    await page.waitForFunction(() => document.body.dataset.done === 'true', null, { timeout: 75_000 });
    // eslint-disable-next-line no-undef
    const labels = await page.evaluate(() => stages.map((s) => s.label));
    const named = (what) => labels.some((l) => l.includes(what));
    if (!named('flash_sale') || !named('hold_and_pay')) {
      throw new Error(`stages ${JSON.stringify(labels)}: expected the flash_sale and hold_and_pay runs`);
    }
    await inlineReport(ctx, page, base, ['hold_and_pay']);
    await shot(page, 'dashboard-job-done');
    return `stages: ${labels.map((l) => l.split(': ').slice(1).join(': ')).join(' | ')}`;
  });
}
