// Single use of one-time links, enforced by the database: opening a link inserts its jti as an
// _id, and a second insert of the same _id fails with a duplicate-key error (E11000), on MongoDB
// and on FerretDB alike, whichever portal replica the second attempt reaches. Records are kept
// until the link would have expired anyway, then swept.
import type { Connection, Collection } from 'mongoose';
import type { Logger } from '@hookline/service-kit';

interface UsedLink {
  _id: string;
  ws: string;
  expireAt: Date;
}

/** What the HTTP layer needs: record a link as used, once. */
export interface LinkRedemptions {
  /** true the first time a jti is redeemed, false every later time. */
  redeem(jti: string, workspaceId: string, linkExpiry: Date): Promise<boolean>;
}

export class MongoLinkStore implements LinkRedemptions {
  private readonly used: Collection<UsedLink>;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    db: Connection,
    private readonly log: Logger,
  ) {
    this.used = db.collection<UsedLink>('portal_used_links');
  }

  async redeem(jti: string, workspaceId: string, linkExpiry: Date): Promise<boolean> {
    try {
      await this.used.insertOne({ _id: jti, ws: workspaceId, expireAt: linkExpiry });
      return true;
    } catch (err) {
      if ((err as { code?: unknown }).code === 11000) return false;
      throw err;
    }
  }

  /** Deletes records of links past their expiry every minute (a used-then-expired link is refused by its expiry alone). */
  startSweeper(everyMs = 60_000): void {
    this.sweeper = setInterval(() => {
      this.used.deleteMany({ expireAt: { $lt: new Date() } }).catch((err: unknown) => this.log.warn({ err }, 'sweeping used portal links failed'));
    }, everyMs);
    this.sweeper.unref();
  }

  stopSweeper(): void {
    clearInterval(this.sweeper);
  }
}
