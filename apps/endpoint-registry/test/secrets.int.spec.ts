// Secrets at rest, read straight from the database: no plaintext, AES-256-GCM with a random IV and
// the key id, bound to workspace and endpoint; tampering fails to decrypt; the rekey command
// re-encrypts everything under a new key, idempotently.
import { Writable } from 'node:stream';
import { status } from '@grpc/grpc-js';
import mongoose from 'mongoose';
import { createLogger } from '@hookline/service-kit';
import { uniquePrefix } from '@hookline/testing';
import { loadConfig } from '../src/config';
import { runRekey } from '../src/rekey';
import { secretAad, SecretBox, type SealedSecret } from '../src/secrets/secret-box';
import { calls, expectCode, newKey, startRegistry, type Calls, type RegistryHarness } from './harness';

jest.setTimeout(60_000);

interface RawSecret {
  kid: string;
  iv: mongoose.mongo.Binary;
  ct: mongoose.mongo.Binary;
  tag: mongoose.mongo.Binary;
  expiresAt: Date | null;
}
interface RawEndpoint {
  _id: string;
  workspaceId: string;
  version: number;
  secrets: RawSecret[];
}

const bin = (b: mongoose.mongo.Binary): Buffer => Buffer.from(b.buffer.subarray(0, b.position));

describe('endpoint-registry secrets at rest', () => {
  let h: RegistryHarness;
  let c: Calls;
  let box: SecretBox;
  const ws = `ws-${uniquePrefix('s')}`;
  const ws2 = `ws-${uniquePrefix('t')}`;
  let n = 0;
  const raw = async (id: string) => (await h.db.collection<RawEndpoint>('endpoints').findOne({ _id: id }))!;
  const create = (workspaceId = ws) => c.createEndpoint({ workspaceId, url: `https://s${++n}.example.com/in` });

  beforeAll(async () => {
    h = await startRegistry({ label: 'sec' });
    c = calls(h.client);
    box = new SecretBox(h.config.secretKeys, h.config.activeSecretKeyId);
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('stores only AES-256-GCM ciphertext with its IV, tag and key id, never the plaintext', async () => {
    const { endpoint, secret } = await create();
    const doc = await raw(endpoint!.id);
    expect(doc.secrets).toHaveLength(1);
    const s = doc.secrets[0]!;
    expect(s.kid).toBe('k1');
    expect(s.expiresAt).toBeNull();
    expect(bin(s.iv)).toHaveLength(12);
    expect(bin(s.tag)).toHaveLength(16);
    expect(bin(s.ct)).toHaveLength(Buffer.byteLength(secret));
    // Not in the document in any form: the string, its base64 body, or the 32 raw bytes.
    const stored = Buffer.from(mongoose.mongo.BSON.serialize(doc));
    expect(stored.includes(Buffer.from(secret))).toBe(false);
    expect(stored.includes(Buffer.from(secret.slice('whsec_'.length)))).toBe(false);
    expect(stored.includes(Buffer.from(secret.slice('whsec_'.length), 'base64'))).toBe(false);
    // ...and it opens with the configured key and this endpoint's associated data.
    expect(box.open(s, secretAad(ws, endpoint!.id))).toBe(secret);
  });

  it('encrypts one secret differently every time (random IV)', async () => {
    const { endpoint, secret } = await create();
    const stored = (await raw(endpoint!.id)).secrets[0]!;
    const aad = secretAad(ws, endpoint!.id);
    const again = box.seal(secret, aad);
    const third = box.seal(secret, aad);
    for (const other of [again, third]) {
      expect(Buffer.from(other.iv as Uint8Array).equals(bin(stored.iv))).toBe(false);
      expect(Buffer.from(other.ct as Uint8Array).equals(bin(stored.ct))).toBe(false);
      expect(box.open(other, aad)).toBe(secret);
    }
    expect(Buffer.from(again.ct as Uint8Array).equals(Buffer.from(third.ct as Uint8Array))).toBe(false);
  });

  it('fails to decrypt a flipped ciphertext, tag or IV byte, and answers INTERNAL without details', async () => {
    const { endpoint } = await create(ws2);
    const id = endpoint!.id;
    const original = (await raw(id)).secrets[0]!;
    const aad = secretAad(ws2, id);
    for (const part of ['ct', 'tag', 'iv'] as const) {
      const flipped = Buffer.from(bin(original[part]));
      flipped[0]! ^= 0x01;
      expect(() => box.open({ ...original, [part]: flipped }, aad)).toThrow();
    }
    // A truncated tag is refused too (GCM would otherwise accept 4-byte tags).
    expect(() => box.open({ ...original, tag: bin(original.tag).subarray(0, 4) }, aad)).toThrow(/16/);

    const flipped = Buffer.from(bin(original.ct));
    flipped[flipped.length - 1]! ^= 0x80;
    await h.db.collection<RawEndpoint>('endpoints').updateOne({ _id: id }, { $set: { 'secrets.0.ct': flipped } });
    const err = await expectCode(c.resolveSubscribers({ workspaceId: ws2, eventType: 'invoice.paid', endpointId: id }), status.INTERNAL, /internal error \(reference \w+\)/);
    expect(err.details).not.toMatch(/auth|decrypt|cipher/i);
    // Restore, so the rekey test below sees a healthy document in this workspace.
    await h.db.collection<RawEndpoint>('endpoints').updateOne({ _id: id }, { $set: { 'secrets.0.ct': bin(original.ct) } });
    const ok = await c.resolveSubscribers({ workspaceId: ws2, eventType: 'invoice.paid', endpointId: id });
    expect(ok.subscribers).toHaveLength(1);
  });

  it('binds a ciphertext to its workspace and endpoint: copied to another endpoint it fails', async () => {
    const a = await create();
    const b = await create();
    const sa = (await raw(a.endpoint!.id)).secrets[0]!;
    expect(() => box.open(sa, secretAad(ws, b.endpoint!.id))).toThrow();
    expect(() => box.open(sa, secretAad(ws2, a.endpoint!.id))).toThrow();
    await h.db.collection<RawEndpoint>('endpoints').updateOne({ _id: b.endpoint!.id }, { $set: { secrets: [sa] } });
    await expectCode(c.resolveSubscribers({ workspaceId: ws, eventType: 'x.y', endpointId: b.endpoint!.id }), status.INTERNAL);
    await c.deleteEndpoint({ workspaceId: ws, endpointId: b.endpoint!.id });
  });

  it('re-encrypts every secret under a new key with the rekey command, idempotently', async () => {
    // Some endpoints with one secret, one with a secret in its grace period, in two workspaces.
    const made = [await create(), await create(ws2), await create()];
    const graced = await create(ws2);
    const rotated = await c.rotateEndpointSecret({ workspaceId: ws2, endpointId: graced.endpoint!.id, oldSecretTtl: { seconds: '3600', nanos: 0 } });
    const all = await h.db.collection<RawEndpoint>('endpoints').find({}).toArray();
    const secretCount = all.reduce((k, d) => k + d.secrets.length, 0);
    expect(all.every((d) => d.secrets.every((s) => s.kid === 'k1'))).toBe(true);
    const before = new Map(all.map((d) => [d._id, d]));
    const plainBefore = new Map<string, string[]>();
    for (const d of all) plainBefore.set(d._id, d.secrets.map((s) => box.open(s, secretAad(d.workspaceId, d._id))));

    // The operator adds k2 and makes it active; k1 stays listed until rekey is done.
    const k1 = h.env.SECRET_ENCRYPTION_KEYS!;
    const k2 = newKey();
    const rekeyEnv = { ...h.env, SECRET_ENCRYPTION_KEYS: `${k1},k2:${k2}`, SECRET_ENCRYPTION_ACTIVE_KEY: 'k2' };
    const logLines: string[] = [];
    const log = createLogger('rekey-test', 'trace', new Writable({ write: (chunk: Buffer, _e, done) => (logLines.push(chunk.toString()), done()) }));

    const first = await runRekey(loadConfig(rekeyEnv), log);
    expect(first).toEqual({ endpoints: all.length, endpointsRekeyed: all.length, secretsRekeyed: secretCount, secretsCurrent: 0, endpointsFailed: 0, activeKeyId: 'k2' });

    const after = await h.db.collection<RawEndpoint>('endpoints').find({}).toArray();
    const onlyK2 = new SecretBox(new Map([['k2', Buffer.from(k2, 'base64')]]), 'k2');
    for (const d of after) {
      const old = before.get(d._id)!;
      expect(d.version).toBe(old.version);
      expect(d.secrets.map((s) => s.kid)).toEqual(d.secrets.map(() => 'k2'));
      expect(d.secrets.map((s) => s.expiresAt)).toEqual(old.secrets.map((s) => s.expiresAt));
      d.secrets.forEach((s, i) => expect(bin(s.ct).equals(bin(old.secrets[i]!.ct))).toBe(false));
      expect(d.secrets.map((s: SealedSecret) => onlyK2.open(s, secretAad(d.workspaceId, d._id)))).toEqual(plainBefore.get(d._id));
    }

    // Safe to re-run: nothing left to do, nothing rewritten.
    const second = await runRekey(loadConfig(rekeyEnv), log);
    expect(second).toEqual({ endpoints: all.length, endpointsRekeyed: 0, secretsRekeyed: 0, secretsCurrent: secretCount, endpointsFailed: 0, activeKeyId: 'k2' });
    const unchanged = await h.db.collection<RawEndpoint>('endpoints').find({}).toArray();
    expect(unchanged.map((d) => d.secrets.map((s) => bin(s.ct).toString('hex')))).toEqual(after.map((d) => d.secrets.map((s) => bin(s.ct).toString('hex'))));

    // A registry that only knows k2 now serves every secret, and encrypts new ones with k2.
    const next = await startRegistry({ label: 'sec2', keepDatabase: true, env: { MONGODB_DATABASE: h.database, SECRET_ENCRYPTION_KEYS: `k2:${k2}` } });
    try {
      const nc = calls(next.client);
      const r = await nc.resolveSubscribers({ workspaceId: ws2, eventType: 'any.type', endpointId: graced.endpoint!.id });
      expect(r.subscribers[0]!.secrets.map((s) => s.secret)).toEqual([rotated.secret, graced.secret]);
      for (const m of made) {
        const one = await nc.resolveSubscribers({ workspaceId: m.endpoint!.workspaceId, eventType: 'any.type', endpointId: m.endpoint!.id });
        expect(one.subscribers[0]!.secrets.map((s) => s.secret)).toEqual([m.secret]);
      }
      const fresh = await nc.createEndpoint({ workspaceId: ws, url: 'https://fresh.example.com/in' });
      expect((await raw(fresh.endpoint!.id)).secrets[0]!.kid).toBe('k2');
    } finally {
      await next.stop(); // same database as `h`: h.stop() drops it
    }

    const logs = logLines.join('');
    expect(logs).toContain('rekey: re-encrypting endpoint secrets');
    for (const plains of plainBefore.values()) for (const p of plains) expect(logs).not.toContain(p);
  });

  it('reports, and leaves alone, a secret it cannot decrypt', async () => {
    const { endpoint } = await create();
    const k3 = newKey();
    const env = { ...h.env, SECRET_ENCRYPTION_KEYS: `${h.env.SECRET_ENCRYPTION_KEYS},k3:${k3}`, SECRET_ENCRYPTION_ACTIVE_KEY: 'k3' };
    // Everything else is under k2 now (previous test), which this key ring lacks: all of it fails,
    // except the new endpoint (k1).
    const counts = await runRekey(loadConfig(env), createLogger('rekey-test', 'silent'));
    expect(counts.secretsRekeyed).toBe(1);
    expect(counts.endpointsFailed).toBe(counts.endpoints - 1);
    const doc = await raw(endpoint!.id);
    expect(doc.secrets[0]!.kid).toBe('k3');
    const other = await h.db.collection<RawEndpoint>('endpoints').findOne({ _id: { $ne: endpoint!.id } });
    expect(other!.secrets[0]!.kid).toBe('k2');
  });
});
