// Exit codes are the CLI's contract with scripts (docs/cli.md):
//   0 ok · 1 the server said no (or a signature did not verify) · 2 usage error · 3 unreachable.
export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

/** Bad flags, missing arguments, unreadable input files: the command never reached a server. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The usage line of the command, printed under the message. */
    readonly usage?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `hookline verify` found no valid signature. */
export class VerificationFailed extends Error {
  constructor(
    readonly reason: string,
    readonly scheme: string | undefined,
  ) {
    super(`signature not valid: ${reason}`);
    this.name = 'VerificationFailed';
  }
}
