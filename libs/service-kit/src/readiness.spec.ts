import { EventEmitter } from 'node:events';
import { createLogger } from './logger';
import { Readiness, watchMongoose } from './readiness';

const silent = createLogger('test', 'silent');

describe('Readiness', () => {
  const sink = () => {
    const states: string[] = [];
    return { states, setHealth: (s: string) => void states.push(s) };
  };

  it('is NOT_SERVING until started, SERVING after, and NOT_SERVING for good once draining', () => {
    const r = new Readiness(silent);
    const s = sink();
    r.attach(s);
    expect(s.states).toEqual(['NOT_SERVING']);
    r.ready();
    expect(s.states).toEqual(['NOT_SERVING', 'SERVING']);
    r.drain();
    r.markUp('mongodb');
    expect(r.status).toBe('NOT_SERVING');
    expect(r.reasons).toEqual(['draining']);
    expect(s.states).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING']);
  });

  it('a lost dependency turns it NOT_SERVING until that dependency is back', () => {
    const r = new Readiness(silent);
    const s = sink();
    r.attach(s);
    r.ready();
    r.markDown('kafka', 'consumer crashed');
    r.markDown('mongodb', 'connection lost');
    expect(r.reasons).toEqual(['kafka: consumer crashed', 'mongodb: connection lost']);
    r.markUp('kafka');
    expect(r.status).toBe('NOT_SERVING');
    r.markUp('mongodb');
    expect(s.states).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING', 'SERVING']);
  });

  it('re-checks a down dependency with its probe and marks it up when the probe answers', async () => {
    const r = new Readiness(silent, 10);
    r.ready();
    let healthy = false;
    r.markDown('kafka', 'publish failed', async () => {
      if (!healthy) throw new Error('still down');
    });
    await new Promise((res) => setTimeout(res, 40));
    expect(r.status).toBe('NOT_SERVING');
    healthy = true;
    await new Promise((res) => setTimeout(res, 40));
    expect(r.status).toBe('SERVING');
  });

  it('follows mongoose connection events', () => {
    const r = new Readiness(silent);
    const db = new EventEmitter();
    watchMongoose(db, r);
    r.ready();
    db.emit('disconnected');
    expect(r.status).toBe('NOT_SERVING');
    db.emit('reconnected');
    expect(r.status).toBe('SERVING');
  });
});

describe('Readiness.dependencyFailed', () => {
  it('turns NOT_SERVING on a database timeout and SERVING again once the probe answers', async () => {
    const r = new Readiness(silent, 20);
    const states: string[] = [];
    r.attach({ setHealth: (s: string) => states.push(s) });
    r.ready();
    let answering = false;
    r.registerProbe('mongodb', async () => {
      if (!answering) throw new Error('still down');
    });
    const timeout = Object.assign(new Error('connection 1 to 127.0.0.1:27027 timed out'), { name: 'MongoNetworkTimeoutError' });
    r.dependencyFailed(new Error('not a dependency error'));
    expect(r.status).toBe('SERVING');
    r.dependencyFailed(new Error('wrapped', { cause: timeout }));
    expect(r.status).toBe('NOT_SERVING');
    expect(r.reasons).toEqual(['mongodb: calls fail: Error']);
    await new Promise((res) => setTimeout(res, 60));
    expect(r.status).toBe('NOT_SERVING');
    answering = true;
    await new Promise((res) => setTimeout(res, 60));
    expect(r.status).toBe('SERVING');
    expect(states).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING', 'SERVING']);
  });
});
