/**
 * status's figures in Prometheus's text exposition format, for
 * node_exporter's textfile collector: every section's series as gauges of a
 * prom-client Registry of its own (prom-client loads only here, when asked),
 * written atomically (temp file, fsync, rename) or printed.
 */
import { Readable } from 'node:stream';
import { writeFileAtomically } from '../fs/durable.ts';
import type { MetricSample } from './section.ts';

/** The samples as exposition text: one gauge per name, with its HELP and TYPE, labelled samples under it. */
export async function exposition(samples: readonly MetricSample[]): Promise<string> {
  const { Gauge, Registry } = await import('prom-client');
  const registry = new Registry();
  const byName = new Map<string, MetricSample[]>();
  for (const sample of samples) byName.set(sample.name, [...(byName.get(sample.name) ?? []), sample]);
  for (const [name, named] of byName) {
    const labelNames = [...new Set(named.flatMap((sample) => Object.keys(sample.labels ?? {})))];
    const gauge = new Gauge({ name, help: named[0]!.help, labelNames, registers: [registry] });
    for (const sample of named) {
      if (sample.labels) gauge.set(sample.labels, sample.value);
      else gauge.set(sample.value);
    }
  }
  return registry.metrics();
}

/** Writes the exposition to `destination`: a file replaced atomically (readable by node_exporter), or stdout for "-". */
export async function writeExposition(destination: string, text: string): Promise<void> {
  if (destination === '-') {
    process.stdout.write(text);
    return;
  }
  await writeFileAtomically(destination, Readable.from([Buffer.from(text)]), { mode: 0o644 });
}
