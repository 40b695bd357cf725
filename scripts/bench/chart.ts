/**
 * Draws results/bench.png with gnuplot (Debian's gnuplot-nox, pngcairo): one
 * panel per kind of figure the benchmarks reported (see BenchReport.chart).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WalPushPoint {
  workload: string;
  contender: string;
  median: number;
  p90: number;
}

export interface RatePoint {
  /** e.g. "walship wal-push (file)". */
  label: string;
  segmentsPerSecond: number;
}

export interface BacklogSeries {
  label: string;
  /** [seconds since the load started, .ready segments]. */
  points: [number, number][];
}

export interface ChartData {
  walPush?: WalPushPoint[];
  drain?: RatePoint[];
  replay?: RatePoint[];
  sustained?: BacklogSeries[];
}

const quote = (text: string): string => `"${text.replaceAll('"', "'")}"`;

/** One colour per family of contender, the same in every panel. */
function colourOf(label: string): number {
  if (label.startsWith('walship')) return 0x9b30d9;
  if (label.startsWith('pgbackrest')) return label.includes('async') ? 0x7fd1a8 : 0x2ca47a;
  return 0x9e9e9e; // floors
}

/** Writes `output` from every section's chart data; returns its path, or undefined when there is nothing to draw. */
export function drawChart(sections: Record<string, unknown>[], output: string, scratch: string): string | undefined {
  const data: ChartData = Object.assign({}, ...sections) as ChartData;
  const panels: string[] = [];
  const file = (name: string, lines: string[]): string => {
    const path = join(scratch, `chart-${name}.dat`);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  };

  if (data.walPush?.length) {
    const workloads = [...new Set(data.walPush.map((point) => point.workload))];
    const contenders = [...new Set(data.walPush.map((point) => point.contender))];
    const rows = workloads.map((workload) =>
      [quote(workload), ...contenders.map((contender) => data.walPush!.find((point) => point.workload === workload && point.contender === contender)?.median ?? 0)].join(' '),
    );
    const path = file('wal-push', rows);
    const width = 0.8 / contenders.length;
    const series = contenders.map(
      (contender, index) => `'${path}' using ${index + 2}:xtic(1) title ${quote(contender)} lc rgb "#${colourOf(contender).toString(16).padStart(6, '0')}"`,
    );
    const labels = contenders.map(
      (_, index) => `'${path}' using ($0 - 0.4 + ${width * (index + 0.5)}):${index + 2}:(sprintf("%.0f", $${index + 2})) with labels offset 0,0.6 notitle`,
    );
    panels.push(
      [
        'set title "wal-push of one 16 MiB segment: median ms (lower is better)"',
        'set style data histograms',
        'set style histogram clustered gap 1',
        'set style fill solid 0.8 border -1',
        'set boxwidth 0.9',
        'set ylabel "ms"',
        'set yrange [0:*]',
        'set key top left',
        `plot ${[...series, ...labels].join(', ')}`,
        'unset style data',
      ].join('\n'),
    );
  }

  for (const [key, title] of [
    ['drain', 'backlog drain: segments/s (higher is better)'],
    ['replay', 'recovery replay: segments/s (higher is better)'],
  ] as const) {
    const points = data[key];
    if (!points?.length) continue;
    const path = file(key, points.map((point) => `${quote(point.label.replace(/ \(/, '\\n('))} ${point.segmentsPerSecond} ${colourOf(point.label)}`));
    panels.push(
      [
        `set title ${quote(title)}`,
        'set style fill solid 0.8 border -1',
        'set boxwidth 0.6',
        'set ylabel "segments/s"',
        'set yrange [0:*]',
        points.length > 4 ? 'set xtics font ",7" rotate by -15 left' : 'set xtics font ",7"',
        'unset key',
        `plot '${path}' using 0:2:3:xtic(1) with boxes lc rgb variable, '' using 0:2:(sprintf("%.1f", $2)) with labels offset 0,0.6`,
        'set xtics font "" norotate',
      ].join('\n'),
    );
  }

  if (data.sustained?.length) {
    const series = data.sustained.map((line, index) => ({ label: line.label, path: file(`sustained-${index}`, line.points.map(([t, n]) => `${t} ${n}`)) }));
    panels.push(
      [
        'set title "sustained pgbench write load: archiver backlog (.ready segments)"',
        'set xlabel "seconds"',
        'set ylabel ".ready segments"',
        'set yrange [0:*]',
        'set key top left',
        `plot ${series.map((line) => `'${line.path}' using 1:2 with lines lw 2 title ${quote(line.label)}`).join(', ')}`,
        'unset xlabel',
      ].join('\n'),
    );
  }

  if (panels.length === 0) return undefined;
  const columns = panels.length === 1 ? 1 : 2;
  const rows = Math.ceil(panels.length / columns);
  const script = [
    `set terminal pngcairo size ${columns * 760},${rows * 480} font "DejaVu Sans,10"`,
    `set output ${quote(output)}`,
    'set grid ytics',
    `set multiplot layout ${rows},${columns}`,
    ...panels.flatMap((panel) => [panel, 'unset title', 'unset ylabel', 'set autoscale']),
    'unset multiplot',
  ].join('\n');
  const scriptPath = join(scratch, 'chart.gp');
  writeFileSync(scriptPath, `${script}\n`);
  execFileSync('gnuplot', [scriptPath], { stdio: ['ignore', 'ignore', 'inherit'] });
  return output;
}
