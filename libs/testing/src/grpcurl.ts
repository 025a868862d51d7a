// grpcurl, a gRPC client nobody here wrote: it knows none of our .proto files and learns every
// service, message and error detail through server reflection. Built once with `go install` into
// .cache/bin by scripts/install-grpcurl.sh (a fresh CI machine builds it on first use, ~1 min).
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './processes';

let binary: string | undefined;

/** The grpcurl binary, built first when missing. */
export function grpcurlBinary(): string {
  binary ??= execFileSync('bash', [path.join(REPO_ROOT, 'scripts/install-grpcurl.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 }).trim();
  return binary;
}

export interface GrpcurlResult {
  /** Exit code: 0 on success; grpcurl exits 64 + the gRPC status code for a failed call. */
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs grpcurl with `args`; `body` goes to stdin (use `-d @`). Never throws on a failed call. */
export function grpcurl(args: string[], body?: string): Promise<GrpcurlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(grpcurlBinary(), ['-max-time', '20', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ code: err ? ((err as { code: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin?.end(body ?? '');
  });
}
