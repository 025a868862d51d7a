import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from './config';

describe('CLI bearer token', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hookline-cli-'));
  const tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, 'tok-from-file\n');

  it('comes from --token-file, HOOKLINE_TOKEN_FILE or HOOKLINE_TOKEN, the file first', () => {
    expect(loadConfig({ 'token-file': tokenFile }, {}).client.bearerToken).toBe('tok-from-file');
    expect(loadConfig({}, { HOOKLINE_TOKEN_FILE: tokenFile, HOOKLINE_TOKEN: 'inline' }).client.bearerToken).toBe('tok-from-file');
    expect(loadConfig({}, { HOOKLINE_TOKEN: 'inline' }).client.bearerToken).toBe('inline');
    expect(loadConfig({}, {}).client.bearerToken).toBeUndefined();
  });

  it('names an unreadable or empty file', () => {
    expect(() => loadConfig({ 'token-file': path.join(dir, 'missing') }, {})).toThrow(/--token-file: cannot read .*missing: ENOENT/);
    writeFileSync(path.join(dir, 'empty'), '\n');
    expect(() => loadConfig({ 'token-file': path.join(dir, 'empty') }, {})).toThrow(/is empty/);
  });
});
