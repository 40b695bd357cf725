// delete's command line on a synthetic archive (file storage): every bad
// input gets one line, exit 1 and deletes nothing; what must stay is refused;
// the dry run and --json change nothing; a backup folder without a sentinel
// is left while young and removed by garbage once old.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { walshipBinary } from '../support/paths.ts';
import { run } from '../support/processes.ts';
import { listing } from '../support/retention.ts';
import { SyntheticArchive, writeToDirectory } from '../support/synthetic-archive.ts';

describe('delete on the command line', () => {
  let root: string;
  let env: Record<string, string>;
  const archive = new SyntheticArchive({ segments: 400, backups: 5, partsPerBackup: 2, backupEveryMs: 7 * 86_400_000 });
  const names = archive.backupNames();
  const walship = (args: string[], extra: Record<string, string> = {}) => run(walshipBinary, args, { env: { PATH: process.env.PATH, ...env, ...extra } });

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'walship-delete-cli-'));
    writeToDirectory(archive, root);
    env = { WALG_FILE_PREFIX: root, TZ: 'UTC' };
    const marked = await walship(['backup-mark', names[1]!]);
    assert.equal(marked.code, 0, marked.stderr);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('refuses every bad input with one line and exit 1, and deletes nothing', async () => {
    const before = await listing(env);
    const cases: [args: string[], message: RegExp, extra?: Record<string, string>][] = [
      [['delete', 'retain', '0'], /^walship delete: ERROR: delete retain "0" is not a count: give a whole number of at least 1$/],
      [['delete', 'retain', '-1'], /^walship delete: ERROR: delete retain "-1" is not a count/],
      [['delete', 'retain', 'abc', '--confirm'], /^walship delete: ERROR: delete retain "abc" is not a count/],
      [['delete', 'retain', '2.5'], /"2\.5" is not a count/],
      [['delete', 'retain', 'FORCE', '2'], /^walship delete: ERROR: delete retain: unknown modifier FORCE: use FULL or FIND_FULL$/],
      [['delete', 'retain', 'full', '2'], /^walship delete: ERROR: delete retain: write the modifier in capitals, as WAL-G takes it: FULL$/],
      [['delete', 'retain', '2', '3'], /^walship delete: ERROR: delete retain: unexpected "3": the form is delete retain \[FULL\|FIND_FULL\] N/],
      [['delete', 'retain', '--keep-daily', '0'], /--keep-daily "0" is not a count/],
      [['delete', 'retain', '--keep-weekly', 'four'], /--keep-weekly "four" is not a count/],
      [['delete', 'retain', '--keep-within', '3'], /--keep-within "3" is not a duration: write a number with a unit/],
      [['delete', 'retain', '3', '--keep-daily', '7', '--confirm'], /^walship delete: ERROR: delete retain: give a count or --keep-daily, not both$/],
      [['delete', 'retain'], /^walship delete: ERROR: delete retain needs a rule: a count \(retain 7\), --keep-last\/daily\/weekly\/monthly\/yearly\/within, or the WALSHIP_RETAIN_\* settings$/],
      [['delete', 'retain'], /WALSHIP_RETAIN_DAILY "seven" is not a count/, { WALSHIP_RETAIN_DAILY: 'seven' }],
      [['delete', 'retain', '2', '--after', 'base_0000000100000000000000FF'], /backup base_0000000100000000000000FF is not among the complete backups: backup-list shows their names/],
      [['delete', 'retain', '2', '--after', 'last tuesday'], /"last tuesday" is neither a backup name .* nor a time with a UTC offset/],
      [['delete', 'before', 'yesterday', '--confirm'], /^walship delete: ERROR: delete before: "yesterday" is neither a backup name \(base_\.\.\., as backup-list shows\) nor a time with a UTC offset such as 2026-11-30 12:00:00\+01$/],
      [['delete', 'before', '2026-01-01 10:00'], /"2026-01-01 10:00" is neither a backup name/],
      [['delete', 'before', '2026-02-30 10:00:00+00'], /"2026-02-30 10:00:00\+00" is neither/],
      [['delete', 'before', 'base_0000000100000000000000FF', '--confirm'], /^walship delete: ERROR: backup base_0000000100000000000000FF is not among the complete backups/],
      [['delete', 'before', 'base_123'], /"base_123" is not a backup name: expected base_ and a 24-hex-digit WAL segment/],
      [['delete', 'before'], /delete before needs a backup name or a time/],
      [['delete', 'target', 'base_0000000100000000000000FF', '--confirm'], /backup base_0000000100000000000000FF is not among the complete backups/],
      [['delete', 'target', 'nonsense'], /delete target: "nonsense" is not a backup name/],
      [['delete', 'target', names[1]!, '--confirm'], /^walship delete: ERROR: backup \S+ is permanent: unmark it with backup-mark --impermanent first, or add --force to delete it anyway$/],
      [['delete', 'target', names[4]!, '--force', '--confirm'], /is the newest complete backup, which walship always keeps so that the archive stays restorable/],
      [['delete', 'target', '--target-user-data', '{"a":1}', names[0]!], /WAL-G's --target-user-data .* is not supported yet: name the backup instead/],
      [['delete', 'everything', '--confirm'], /^walship delete: ERROR: delete everything refuses while permanent backups exist \(\S+\): unmark them with backup-mark --impermanent, or add FORCE to delete them too$/],
      [['delete', 'everything', 'NOW', '--confirm'], /delete everything: unknown modifier NOW: use FORCE$/],
      [['delete', 'everything', 'force', '--confirm'], /write the modifier in capitals, as WAL-G takes it: FORCE/],
      [['delete', 'everything', 'FORCE', 'now', '--confirm'], /delete everything: unexpected "now": the form is delete everything \[FORCE\]/],
      [['delete', 'garbage', 'EVERYTHING', '--confirm'], /delete garbage: unknown modifier EVERYTHING: use ARCHIVES or BACKUPS/],
      [['delete', 'frobnicate', '--confirm'], /^walship delete: ERROR: delete: unknown verb "frobnicate": use one of retain, before, everything, target, garbage$/],
      [['delete'], /^walship: missing required argument 'verb'/],
      [['delete', 'retain', '2', '--force'], /--force is for delete target only/],
      [['delete', 'before', names[2]!, '--keep-daily', '3'], /--keep-daily is for delete retain only/],
      [['delete', 'garbage', '--after', names[2]!], /--after is for delete retain only/],
      [['delete', 'retain', '2', '--pitr-window', 'soon'], /--pitr-window "soon" is not a duration/],
      [['delete', 'retain', '2'], /WALSHIP_PITR_WINDOW "0d" is zero/, { WALSHIP_PITR_WINDOW: '0d' }],
      [['delete', 'garbage', '--incomplete-age', '1x', '--confirm'], /--incomplete-age "1x" is not a duration/],
      [['delete', 'garbage', '--without-backup-check', '--confirm'], /WAL-G's --without-backup-check is not supported yet/],
    ];
    for (const [args, message, extra] of cases) {
      const result = await walship(args, extra);
      assert.equal(result.code, 1, `${args.join(' ')}: exit ${result.code}, ${result.stderr}`);
      assert.equal(result.stdout, '', args.join(' '));
      assert.match(result.stderr.trimEnd(), message, args.join(' '));
      assert.equal(result.stderr.trimEnd().split('\n').length, 1, `${args.join(' ')}: one line, not ${result.stderr}`);
    }
    assert.deepEqual(await listing(env), before);
  });

  it('prints the plan as JSON without deleting, and takes WAL-G\'s FULL, FIND_FULL and --use-sentinel-time', async () => {
    const before = await listing(env);
    const planned = await walship(['delete', 'retain', 'FIND_FULL', '2', '--json', '--use-sentinel-time']);
    assert.equal(planned.code, 0, planned.stderr);
    const plan = JSON.parse(planned.stdout) as { confirmed: boolean; deleted: null; backups: { action: string; reasons: string[] }[]; wal: { delete: { timeline: number; segments: number }[]; kept_for_consistency: unknown[] } };
    assert.equal(plan.confirmed, false);
    assert.equal(plan.deleted, null);
    assert.deepEqual(plan.backups.map((backup) => `${backup.action}: ${backup.reasons.join(', ')}`), [
      'delete: kept by no rule',
      'keep: permanent',
      'delete: kept by no rule',
      'keep: newest 2',
      'keep: newest 2, newest complete backup',
    ]);
    assert.ok(plan.wal.delete.length > 0 && plan.wal.kept_for_consistency.length === 1);
    const full = await walship(['delete', 'retain', 'FULL', '2']);
    assert.equal(full.code, 0, full.stderr);
    assert.match(full.stdout, /^Dry run: nothing was deleted\. Run it again with --confirm to delete\.$/m);
    assert.deepEqual(await listing(env), before);
  });

  it('leaves a young backup folder without a sentinel (a backup-push may be writing it), and garbage removes it once old', async () => {
    const folder = join(root, 'basebackups_005', 'base_0000000300000000000001FF', 'tar_partitions');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'part_001.tar.zst'), 'a part of a backup-push still running');
    const young = await walship(['delete', 'garbage', 'BACKUPS', '--confirm']);
    assert.equal(young.code, 0, young.stderr);
    assert.match(young.stdout, /^ {2}leave {3}base_0000000300000000000001FF {2}1 object, .* {2}no sentinel, but its newest object is younger than 24h: a backup-push may still be writing it$/m);
    assert.ok((await listing(env)).has('basebackups_005/base_0000000300000000000001FF/tar_partitions/part_001.tar.zst'));
    const dayAgo = new Date(Date.now() - 25 * 3_600_000);
    utimesSync(join(folder, 'part_001.tar.zst'), dayAgo, dayAgo);
    const old = await walship(['delete', 'garbage', 'BACKUPS', '--confirm']);
    assert.equal(old.code, 0, old.stderr);
    assert.match(old.stdout, /^ {2}delete {2}base_0000000300000000000001FF {2}1 object, .* {2}no sentinel: an incomplete backup$/m);
    assert.match(old.stdout, /^Deleted 0 backups, 1 backup folder and 0 WAL files: 1 object, /m);
    assert.ok(!(await listing(env)).has('basebackups_005/base_0000000300000000000001FF/tar_partitions/part_001.tar.zst'));
  });
});
