// What the browser scenarios share: Chromium from Debian driven by
// playwright-core, set-up calls to the API, waits on conditions with
// deadlines, and screenshots at desktop and phone sizes.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

// playwright-core is installed by scripts/test.d/60-browser.sh under
// PLAYWRIGHT_DIR, outside the tree.
const require = createRequire(join(process.env.PLAYWRIGHT_DIR ?? '.', 'package.json'));
const { chromium } = require('playwright-core');

export const BASE = process.env.BASE_URL;
export const ADMIN = process.env.ADMIN_TOKEN;
export const BACKEND = process.env.BACKEND ?? 'memory';
export const OUT = process.env.OUT_DIR ?? 'browser-output';
/** The server's --hold-ttl, in ms. */
export const HOLD_TTL_MS = Number(process.env.HOLD_TTL_MS ?? 3000);
/** The longest any single condition is waited for. */
export const WAIT_MS = 10_000;

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 390, height: 844 };

export const nonce = Math.random().toString(36).slice(2, 8);

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A fresh browser context (its own localStorage), phone-sized or not. */
export async function context(browser, { phone = false } = {}) {
  return browser.newContext({
    baseURL: BASE,
    viewport: phone ? PHONE : DESKTOP,
    isMobile: phone,
    hasTouch: phone,
    deviceScaleFactor: phone ? 2 : 1,
  });
}

/** A set-up call to the API: `[status, body]`. */
export async function call(method, path, { body, token, admin = false } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers['x-queue-token'] = token;
  if (admin) headers.authorization = `Bearer ${ADMIN}`;
  const res = await fetch(BASE + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return [res.status, text ? JSON.parse(text) : null];
}

export async function must(method, path, opts, status = 200) {
  const [got, body] = await call(method, path, opts);
  if (got !== status) throw new Error(`${method} ${path}: ${got} ${JSON.stringify(body)}, expected ${status}`);
  return body;
}

export async function enter(eventId, userId) {
  return must('POST', '/api/v1/queue/enter', { body: { eventId, userId } });
}

/** Waits until the element's trimmed text is `text`. */
export async function text(page, selector, want, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(
      ([s, t]) => document.querySelector(s)?.textContent?.trim() === t,
      [selector, String(want)],
      { timeout, polling: 50 },
    );
  } catch {
    const got = await page.$eval(selector, (el) => el.textContent.trim()).catch(() => '(absent)');
    throw new Error(`${selector} never read ${JSON.stringify(String(want))} within ${timeout} ms (reads ${JSON.stringify(got)})`);
  }
}

/** Waits until `selector` is visible (or, with `visible: false`, hidden). */
export async function visible(page, selector, { timeout = WAIT_MS, visible: on = true } = {}) {
  await page.locator(selector).first().waitFor({ state: on ? 'visible' : 'hidden', timeout });
}

/** Waits until `selector`'s `data-NAME` is `value`. */
export async function data(page, selector, name, value, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(
      ([s, n, v]) => document.querySelector(s)?.dataset?.[n] === v,
      [selector, name, value],
      { timeout, polling: 50 },
    );
  } catch {
    const got = await page.$eval(selector, (el, n) => el.dataset[n], name).catch(() => '(absent)');
    throw new Error(`${selector} data-${name} never read ${value} within ${timeout} ms (reads ${got})`);
  }
}

/** Fails if the waiting room stops showing position `want` during `ms`. */
export async function stays(page, want, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const got = await page.evaluate(() => (document.querySelector('#waiting').hidden
      ? `not waiting (${document.querySelector('#active').hidden ? 'gone' : 'ACTIVE'})`
      : document.querySelector('#position').textContent.trim()));
    if (got !== String(want)) throw new Error(`the position moved to ${got} (should stay ${want})`);
    await page.waitForTimeout(100);
  }
}

/** A screenshot under OUT/screenshots, named by backend, page and size. */
export async function shot(page, name) {
  const dir = join(OUT, 'screenshots');
  mkdirSync(dir, { recursive: true });
  const size = page.viewportSize().width < 600 ? 'phone' : 'desktop';
  const file = join(dir, `${BACKEND}-${name}-${size}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * The page `path` on a phone-sized screen, captured as `name`: opened
 * with `storage` (the desktop page's localStorage entries, as a reload
 * would keep them) and captured once `ready(page)` resolved.
 */
export async function phoneShot(browser, errors, path, name, { storage = {}, ready = async () => {} } = {}) {
  const phone = await context(browser, { phone: true });
  try {
    const page = await phone.newPage();
    watchErrors(page, errors);
    await page.goto(path);
    if (Object.keys(storage).length) {
      await page.evaluate((entries) => {
        for (const [k, v] of Object.entries(entries)) localStorage.setItem(k, v);
      }, storage);
      await page.reload();
    }
    await ready(page);
    return await shot(page, name);
  } finally {
    await phone.close();
  }
}

/** The page's localStorage entries whose key starts with `prefix`. */
export async function stored(page, prefix = '') {
  return page.evaluate((p) => Object.fromEntries(
    Object.entries(localStorage).filter(([k]) => k.startsWith(p)),
  ), prefix);
}

/** Starts recording every text `selector` shows (read with `seen`). */
export async function record(page, selector) {
  await page.evaluate((s) => {
    const el = document.querySelector(s);
    window.__seen = [];
    const note = () => {
      const t = el.textContent.trim();
      if (t && window.__seen[window.__seen.length - 1] !== t) window.__seen.push(t);
    };
    new MutationObserver(note).observe(el, { childList: true, characterData: true, subtree: true });
    note();
  }, selector);
}

export async function seen(page) {
  return page.evaluate(() => window.__seen);
}

/** Fails the scenario on any script error a page reports. */
export function watchErrors(page, errors) {
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
}
