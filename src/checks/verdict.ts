/**
 * The monitoring-plugin convention walship's check commands follow
 * (wal-verify, backup-verify, drill, status), so that Nagios, Icinga or
 * Zabbix run them as they are: the exit code is the state (0 OK, 1 WARNING,
 * 2 CRITICAL, 3 UNKNOWN: could not check), and the first line on stdout is
 * the verdict, `WALSHIP CRITICAL - 2 segments lost on timeline 1`.
 */
export const CHECK_STATES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;
export type CheckState = (typeof CHECK_STATES)[number];

export const CHECK_EXIT_CODES: Record<CheckState, number> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 };

/** Severity for combining states: UNKNOWN ranks between WARNING and CRITICAL, as Nagios ranks them. */
const SEVERITY: Record<CheckState, number> = { OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3 };

/** The worst of `states`; OK when there are none. */
export function worstState(states: Iterable<CheckState>): CheckState {
  let worst: CheckState = 'OK';
  for (const state of states) if (SEVERITY[state] > SEVERITY[worst]) worst = state;
  return worst;
}

/** One thing a check found, with the state it implies. */
export interface Finding {
  state: CheckState;
  message: string;
}

/** The one-line verdict: `WALSHIP <STATE> - <summary>`, on a single line whatever the summary holds. */
export function verdictLine(state: CheckState, summary: string): string {
  return `WALSHIP ${state} - ${summary.replace(/\s*\n\s*/g, '; ')}`;
}

/**
 * A verdict over findings: the worst state, and a summary naming the worst
 * findings first (OK findings only when nothing is wrong).
 */
export function summarize(findings: readonly Finding[], okSummary: string): { state: CheckState; summary: string } {
  const state = worstState(findings.map((finding) => finding.state));
  if (state === 'OK') return { state, summary: okSummary };
  const worstFirst = findings.filter((finding) => finding.state !== 'OK').sort((a, b) => SEVERITY[b.state] - SEVERITY[a.state]);
  return { state, summary: worstFirst.map((finding) => finding.message).join('; ') };
}

/** What a check found: its verdict, the lines that explain it, and the full result for --json. */
export interface CheckResult {
  state: CheckState;
  summary: string;
  details?: readonly string[];
  json: unknown;
}

/**
 * Prints a check's result: the verdict line first, then either the detail
 * lines or, with `json`, the full result as JSON. Returns the exit code.
 */
export function reportCheck(result: CheckResult, options: { json?: boolean }): number {
  const lines = [verdictLine(result.state, result.summary)];
  if (options.json) lines.push(JSON.stringify(result.json, null, 2));
  else lines.push(...(result.details ?? []));
  process.stdout.write(`${lines.join('\n')}\n`);
  return CHECK_EXIT_CODES[result.state];
}
