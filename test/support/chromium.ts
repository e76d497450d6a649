import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

// The browser tests' Chromium: Debian's package (CI installs it), driven by playwright-core. Started with
// the flags this machine needs: its network is closed, so background fetches and QUIC stay off.

export const CHROMIUM = '/usr/bin/chromium';

/** Whether Chromium is here; a test file without it says so once and skips. */
export function chromiumAvailable(testFile: string): boolean {
  const have = existsSync(CHROMIUM);
  if (!have) console.warn(`${testFile} skipped: ${CHROMIUM} not found (apt-get install -y chromium)`);
  return have;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
