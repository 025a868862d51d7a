// Deliveries over time by outcome (stacked bars) and mean answer time (line), as inline SVG:
// no chart library, nothing inline for the CSP to refuse (colours are CSS classes). The same
// numbers are in a table for screen readers.
import { useId } from 'react';
import type { Attempt } from '../../api';
import { bucketAttempts } from './buckets';

const W = 600;
const H = 160;
const PAD = 28;

export function DeliveriesChart({ attempts }: { attempts: Attempt[] }) {
  const id = useId();
  const buckets = bucketAttempts(attempts);
  const max = Math.max(1, ...buckets.map((b) => b.succeeded + b.retrying + b.failed));
  const maxMs = Math.max(1, ...buckets.map((b) => b.meanMs ?? 0));
  const bw = (W - PAD * 2) / buckets.length;
  const y = (n: number) => ((H - PAD) * n) / max;
  const time = (t: number) => new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const line = buckets
    .map((b, i) => (b.meanMs === null ? null : `${PAD + i * bw + bw / 2},${H - PAD - ((H - PAD * 2) * b.meanMs) / maxMs}`))
    .filter(Boolean)
    .join(' ');
  const total = buckets.reduce((s, b) => s + b.succeeded + b.retrying + b.failed, 0);
  return (
    <figure className="chart" aria-labelledby={`${id}-cap`}>
      <figcaption id={`${id}-cap`}>
        Deliveries over time by outcome, and mean answer time ({total === 1 ? '1 attempt' : `${total} attempts`})
      </figcaption>
      <div className="legend" aria-hidden="true">
        <span className="key succeeded" /> Succeeded <span className="key retrying" /> Retrying <span className="key failed" /> Failed <span className="key answer" /> Answer time (max {maxMs} ms)
      </div>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${id}-cap`} preserveAspectRatio="none" className="chart-svg">
        <line x1={PAD} x2={W - PAD} y1={H - PAD} y2={H - PAD} className="axis" />
        {buckets.map((b, i) => {
          const x = PAD + i * bw + 2;
          const s = y(b.succeeded);
          const r = y(b.retrying);
          const f = y(b.failed);
          return (
            <g key={b.start}>
              <rect x={x} width={bw - 4} y={H - PAD - s} height={s} className="bar succeeded" />
              <rect x={x} width={bw - 4} y={H - PAD - s - r} height={r} className="bar retrying" />
              <rect x={x} width={bw - 4} y={H - PAD - s - r - f} height={f} className="bar failed" />
              {i % 3 === 0 && (
                <text x={x} y={H - 8} className="tick">
                  {time(b.start)}
                </text>
              )}
            </g>
          );
        })}
        {line && <polyline points={line} className="answer-line" />}
      </svg>
      <table className="sr-only">
        <caption>Deliveries per interval</caption>
        <thead>
          <tr>
            <th scope="col">From</th>
            <th scope="col">Succeeded</th>
            <th scope="col">Retrying</th>
            <th scope="col">Failed</th>
            <th scope="col">Mean answer time</th>
          </tr>
        </thead>
        <tbody>
          {buckets.map((b) => (
            <tr key={b.start}>
              <td>{time(b.start)}</td>
              <td>{b.succeeded}</td>
              <td>{b.retrying}</td>
              <td>{b.failed}</td>
              <td>{b.meanMs === null ? '—' : `${b.meanMs} ms`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
