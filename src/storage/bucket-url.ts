/** Parsing WAL-G's bucket URLs: s3://bucket/path, gs://bucket/path, azure://container/path. */
import type { Config } from '../config/config.ts';

export interface BucketLocation {
  /** Bucket (or Azure container) name. */
  bucket: string;
  /** Key prefix inside the bucket: '' or a path ending in '/'. */
  prefix: string;
}

export function readBucketUrl(config: Config, setting: string, scheme: string): BucketLocation {
  const value = config.get(setting)!;
  const expected = `${scheme}://bucket/path (the path is optional)`;
  const match = new RegExp(`^${scheme}://([^/?#]+)(/[^?#]*)?$`).exec(value.trim());
  if (!match) throw config.invalid(setting, expected);
  const parts = (match[2] ?? '').split('/').filter((part) => part !== '');
  if (parts.some((part) => part === '.' || part === '..')) throw config.invalid(setting, `${expected} without . or .. segments`);
  return { bucket: match[1]!, prefix: parts.length > 0 ? `${parts.join('/')}/` : '' };
}
