// The portal's front end: React + Vite. The output goes to apps/portal/dist/web, which the portal
// server serves. @hookline/url-policy is bundled from source with a browser stand-in for
// node:net (isIP, BlockList), so the page checks URLs with exactly the registry's rules and words.
import path from 'node:path';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const here = import.meta.dirname;

export default defineConfig({
  root: here,
  plugins: [react()],
  resolve: {
    alias: {
      'node:net': path.join(here, 'src/utils/node-net-shim.ts'),
      '@hookline/url-policy': path.join(here, '../../../libs/url-policy/src/index.ts'),
    },
  },
  build: {
    outDir: path.join(here, '../dist/web'),
    emptyOutDir: true,
    // No inline scripts or styles anywhere: the CSP allows only files from the portal's origin.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
