import { verify } from '@hookline/signing';
import { usageLine, type Command } from '../command';
import { UsageError, VerificationFailed } from '../errors';
import { parseDurationSeconds, parseHeaderLine, parseSavedRequest, parseTime, readFile } from '../parse';

export const verifyCommand: Command = {
  words: ['verify'],
  args: [],
  summary:
    "Checks a saved request's signature (X-Signature-256 or Standard Webhooks) against the endpoint secret. " +
    'Give the request as one file (--request: headers, empty line, body) or as --body plus --header lines. ' +
    'The secret comes from --secret or HOOKLINE_SECRET (keeps it out of shell history).',
  options: {
    request: { type: 'string', help: 'file with the saved HTTP request: optional request line, headers, empty line, raw body' },
    body: { type: 'string', help: 'file with the raw body, byte for byte' },
    header: { type: 'string', multiple: true, help: '"Name: value" (repeatable), with --body' },
    secret: { type: 'string', multiple: true, help: 'endpoint secret (repeatable: any one may match, as during a rotation)' },
    tolerance: { type: 'string', help: 'Standard Webhooks timestamp tolerance, both directions (default 5m)' },
    at: { type: 'string', help: 'check the timestamp as of this time (RFC 3339 or a duration ago) instead of now' },
  },
  async run(ctx, flags) {
    const secrets = (flags.secret as string[] | undefined) ?? (ctx.config.secretFromEnv ? [ctx.config.secretFromEnv] : []);
    if (secrets.length === 0) throw new UsageError('give the endpoint secret with --secret or HOOKLINE_SECRET', usageLine(this));
    const request = flags.request as string | undefined;
    const bodyFile = flags.body as string | undefined;
    const headerLines = (flags.header as string[] | undefined) ?? [];
    if ((request === undefined) === (bodyFile === undefined)) throw new UsageError('give either --request FILE or --body FILE (with --header lines)', usageLine(this));
    if (request !== undefined && headerLines.length > 0) throw new UsageError('--header goes with --body; a --request file carries its own headers', usageLine(this));
    let headers: Record<string, string> = {};
    let body: Buffer;
    if (request !== undefined) ({ headers, body } = parseSavedRequest(readFile('request', request)));
    else {
      body = readFile('body', bodyFile!);
      for (const line of headerLines) {
        const [k, v] = parseHeaderLine('header', line);
        headers[k] = headers[k] === undefined ? v : `${headers[k]} ${v}`;
      }
    }
    const toleranceSeconds = parseDurationSeconds('tolerance', (flags.tolerance as string | undefined) ?? '300');
    const now = flags.at === undefined ? ctx.now() : parseTime('at', flags.at as string, ctx.now());
    const result = verify(body, secrets, headers, { toleranceSeconds, now });
    if (!result.ok) throw new VerificationFailed(result.reason, result.scheme);
    if (ctx.config.json) return ctx.out.json({ valid: true, scheme: result.scheme });
    ctx.out.line(`valid: ${result.scheme === 'standard-webhooks' ? 'Standard Webhooks signature' : 'X-Signature-256'} matches`);
  },
};
