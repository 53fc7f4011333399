// Runs every browser scenario against BASE_URL, in order, each with its
// own deadline; prints a line per scenario and exits 1 if any failed.
import { BACKEND, launch } from './lib.mjs';
import * as buyer from './buyer.mjs';
import * as seats from './seats.mjs';
import * as operator from './operator.mjs';
import * as dashboard from './dashboard.mjs';
import * as dashboardScale from './dashboard-scale.mjs';
import * as dashboardJob from './dashboard-job.mjs';

/** The most one scenario may take. */
const SCENARIO_MS = 90_000;

// SCENARIOS=operator,... runs only those (the suite's negative control).
// A scenario that names its `backends` runs in those passes only.
const all = {
  buyer, seats, operator, dashboard, 'dashboard-scale': dashboardScale, 'dashboard-job': dashboardJob,
};
const chosen = (process.env.SCENARIOS ?? Object.keys(all).join(','))
  .split(',')
  .map((n) => all[n])
  .filter((s) => !s.backends || s.backends.includes(BACKEND));

const browser = await launch();
let failed = 0;
for (const scenario of chosen) {
  const errors = [];
  const started = Date.now();
  let timer;
  try {
    const note = await Promise.race([
      scenario.run(browser, errors),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`over ${SCENARIO_MS} ms`)), SCENARIO_MS);
      }),
    ]);
    if (errors.length) throw new Error(errors.join('; '));
    console.log(`ok   ${BACKEND}: ${scenario.name} (${Date.now() - started} ms)${note ? `: ${note}` : ''}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${BACKEND}: ${scenario.name}: ${e.message}`);
  } finally {
    clearTimeout(timer);
  }
}
await browser.close();
process.exit(failed ? 1 : 0);
