import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

// The operators' page scripts, bundled for the browser from TypeScript in this folder when first asked
// for (esbuild, which tsx already runs on): the inspector page carries the payment machine itself,
// xstate and @statelyai/inspect, so the machine replayed in the browser is the very one the engine runs.
// No build step, nothing generated checked in; a bundle is a few hundred milliseconds once per process.

export type AssetName = 'inspector' | 'statechart';

export interface BrowserAsset {
  code: string;
  etag: string;
}

const ENTRIES: Record<AssetName, string> = {
  inspector: fileURLToPath(new URL('./inspector.browser.ts', import.meta.url)),
  statechart: fileURLToPath(new URL('./statechart.browser.ts', import.meta.url)),
};

async function bundle(): Promise<Record<AssetName, BrowserAsset>> {
  const result = await build({
    entryPoints: ENTRIES,
    bundle: true,
    write: false,
    outdir: 'operator-assets',
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const assets = {} as Record<AssetName, BrowserAsset>;
  for (const file of result.outputFiles) {
    const name = file.path.split(/[\\/]/).at(-1)!.replace(/\.js$/, '') as AssetName;
    assets[name] = { code: file.text, etag: `"${createHash('sha256').update(file.contents).digest('base64url').slice(0, 27)}"` };
  }
  return assets;
}

/** The bundles, built once (a failed build is tried again on the next call). */
export function browserAssets(): () => Promise<Record<AssetName, BrowserAsset>> {
  let built: Promise<Record<AssetName, BrowserAsset>> | null = null;
  return () => {
    built ??= bundle().catch((error: unknown) => {
      built = null;
      throw error;
    });
    return built;
  };
}
