// The waiting room's wait, from the server's estimates (server/assets/
// common.js, waitText): one figure when they agree, the range they span
// when they do not, a wide band until three were seen. Run by the browser
// suite with `node --test`, before the browser scenarios.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitText } from '../../server/assets/common.js';

const t0 = 1_000_000;
const at = (secsAfter, secs) => ({ at: t0 + secsAfter * 1000, secs });

test('nothing seen yet is said so', () => {
  assert.equal(waitText([], t0), 'not known yet');
});

test('a first estimate gets a wide band around it', () => {
  assert.equal(waitText([at(0, 100)], t0), '1 min 10 s to 2 min 30 s');
});

test('estimates that agree once counted down give one figure', () => {
  const seen = [at(0, 100), at(10, 90), at(20, 80)];
  assert.equal(waitText(seen, t0 + 20_000), 'about 1 min 20 s');
});

test('estimates that disagree give the range they span, counted down to now', () => {
  const seen = [at(0, 100), at(10, 200), at(20, 150)];
  // Counted down to t0 + 20 s: 80, 190, 150.
  assert.equal(waitText(seen, t0 + 20_000), '1 min 20 s to 3 min 10 s');
});

test('estimates older than a minute are not compared', () => {
  const seen = [at(0, 1000), at(70, 100), at(75, 95), at(80, 90)];
  assert.equal(waitText(seen, t0 + 80_000), 'about 1 min 30 s');
});

test('short and finished waits are said as such', () => {
  assert.equal(waitText([at(0, 10), at(1, 9), at(2, 8)], t0 + 2000), 'under 30 s');
  assert.equal(waitText([at(0, 0), at(1, 0), at(2, 0)], t0 + 2000), 'any moment now');
});
