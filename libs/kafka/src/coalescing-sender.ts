// One produce request in flight per topic, with the records that arrive meanwhile merged into
// the next one. kafkajs' idempotent producer sends one produce request per broker at a time (a
// broker lock guards the sequence numbers), so callers each sending their own small request
// queue behind each other at one round trip apiece (~1 ms): ~1,000 records/s whatever the
// parallelism. Shared by event-ingest (accepted events) and the dispatcher (retry tiers).
import type { Message, Producer } from 'kafkajs';

interface QueuedSend {
  messages: Message[];
  bytes: number;
  /** Set once the records are in a produce request; from then on they may be written. */
  sent: boolean;
  withdrawn: boolean;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * One produce request in flight per sink; records queued meanwhile are merged into the next
 * request, up to `maxBytes` (a single larger entry still goes alone). Entries keep their queue
 * order, and a caller's records stay contiguous and in order within a request.
 */
export class CoalescingSender {
  private readonly queue: QueuedSend[] = [];
  private sending = false;

  constructor(
    private readonly producer: Pick<Producer, 'send'>,
    private readonly topic: string,
    private readonly maxBytes: number,
  ) {}

  /**
   * Queues records for the next request. `acknowledged` resolves once all in-sync replicas have
   * them, and rejects when their request fails (they may or may not be written). `withdraw`
   * takes them back if no request carries them yet (after a timeout) and says whether it did.
   */
  send(messages: Message[], bytes: number): { acknowledged: Promise<void>; withdraw: () => boolean } {
    let entry!: QueuedSend;
    const acknowledged = new Promise<void>((resolve, reject) => {
      entry = { messages, bytes, sent: false, withdrawn: false, resolve, reject };
    });
    this.queue.push(entry);
    void this.pump();
    return {
      acknowledged,
      withdraw: () => {
        if (entry.sent) return false;
        entry.withdrawn = true;
        return true;
      },
    };
  }

  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      for (;;) {
        const batch: QueuedSend[] = [];
        let bytes = 0;
        while (this.queue.length > 0) {
          const next = this.queue[0]!;
          if (next.withdrawn) {
            this.queue.shift();
            continue;
          }
          if (batch.length > 0 && bytes + next.bytes > this.maxBytes) break;
          this.queue.shift();
          next.sent = true;
          batch.push(next);
          bytes += next.bytes;
        }
        if (batch.length === 0) return;
        try {
          await this.producer.send({ topic: this.topic, acks: -1, messages: batch.length === 1 ? batch[0]!.messages : batch.flatMap((b) => b.messages) });
          for (const b of batch) b.resolve();
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.sending = false;
    }
  }
}

