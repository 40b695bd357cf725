/**
 * One section of `walship status` (backups, recovery window, drills, ...):
 * its figures (for --json), its findings (a state and a one-line reason
 * each, checks/verdict.ts), its Prometheus series as plain records
 * (prometheus.ts turns them into prom-client gauges in one place), and the
 * lines it prints. A further section is one function returning one of these.
 */
import type { Finding } from '../checks/verdict.ts';

export interface MetricSample {
  name: string;
  help: string;
  labels?: Record<string, string>;
  value: number;
}

export interface StatusSection {
  name: string;
  figures: Record<string, unknown>;
  findings: Finding[];
  metrics: MetricSample[];
  lines: string[];
}

export const seconds = (time: Date | number) => (typeof time === 'number' ? time : time.getTime()) / 1000;

export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** An age or limit as a DBA says it: 31h, 2d 3h, 14m, 40s (the two largest units). */
export function formatAge(ms: number): string {
  const total = Math.max(Math.round(ms / 1000), 0);
  const parts: [number, string][] = [[Math.floor(total / 86_400), 'd'], [Math.floor((total % 86_400) / 3600), 'h'], [Math.floor((total % 3600) / 60), 'm'], [total % 60, 's']];
  const first = parts.findIndex(([value]) => value > 0);
  if (first < 0) return '0s';
  return parts.slice(first, first + 2).filter(([value]) => value > 0).map(([value, unit]) => `${value}${unit}`).join(' ');
}

/** A time as UTC to the second: 2026-12-02 03:12:00Z. */
export function formatTime(time: Date): string {
  return `${time.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}
