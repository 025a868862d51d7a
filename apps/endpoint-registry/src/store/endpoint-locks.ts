// One writer at a time per endpoint, on MongoDB and on FerretDB alike.
//
// Why not just findOneAndUpdate({ _id, version }): FerretDB 1.24 (SQLite) evaluates the filter and
// writes in separate steps, so of 8 concurrent writers filtering on the same version, several are
// told they won (measured: 2-4 of 8) and all but one change is silently lost. A unique-key insert
// is atomic on both servers, so a lock document per endpoint serialises read-modify-write; the
// version filter stays as a second line of defence on MongoDB.
import { randomUUID } from 'node:crypto';
import type { Model } from 'mongoose';
import { aborted } from '../errors';

export interface LockDoc {
  _id: string;
  owner: string;
  at: Date;
}

const DUPLICATE_KEY = 11000;
export const isDuplicateKey = (err: unknown): boolean => typeof err === 'object' && err !== null && (err as { code?: unknown }).code === DUPLICATE_KEY;

export interface EndpointLockOptions {
  /** A lock older than this belongs to a crashed writer and is taken over. @default 30_000 ms */
  staleMs?: number;
  /** Give up (ABORTED, retryable) after waiting this long for the lock. @default 5_000 ms */
  waitMs?: number;
}

export class EndpointLocks {
  private readonly staleMs: number;
  private readonly waitMs: number;

  constructor(
    private readonly locks: Model<LockDoc>,
    options: EndpointLockOptions = {},
  ) {
    this.staleMs = options.staleMs ?? 30_000;
    this.waitMs = options.waitMs ?? 5_000;
  }

  /** Runs `fn` while holding the endpoint's lock; other writers of that endpoint wait. */
  async withLock<T>(endpointId: string, fn: () => Promise<T>): Promise<T> {
    const id = `endpoint:${endpointId}`;
    const owner = randomUUID();
    const giveUpAt = Date.now() + this.waitMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.locks.create({ _id: id, owner, at: new Date() });
        break;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const holder = await this.locks.findById(id).lean<LockDoc>();
      if (holder && holder.at.getTime() < Date.now() - this.staleMs) {
        await this.locks.deleteOne({ _id: id, owner: holder.owner });
        continue;
      }
      if (Date.now() > giveUpAt) throw aborted(`endpoint ${endpointId} is being changed by another request; retry`);
      // 10-50 ms, growing with contention, jittered so waiters do not retry in lockstep.
      await new Promise((r) => setTimeout(r, Math.min(attempt, 5) * (5 + Math.random() * 5)));
    }
    try {
      return await fn();
    } finally {
      // Releasing is best effort: a lock left behind by a failed delete goes stale after staleMs.
      await this.locks.deleteOne({ _id: id, owner }).catch(() => undefined);
    }
  }
}
