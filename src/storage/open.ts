/**
 * Opens the storage a spec names. Each backend module is imported only when
 * it is the one named, so a command never pays for the SDKs of backends it
 * does not use; no other module imports a backend.
 */
import type { StorageSpec } from './spec.ts';
import type { Storage } from './storage.ts';

/** The storage `spec` names, carrying the archive's encryption key when it has one. */
export async function openStorage(spec: StorageSpec): Promise<Storage> {
  const storage = await openBackend(spec);
  // Not enumerable: the key is never serialised or printed with the storage.
  if (spec.encryption) Object.defineProperty(storage, 'encryption', { value: spec.encryption, enumerable: false });
  return storage;
}

async function openBackend(spec: StorageSpec): Promise<Storage> {
  const { settings } = spec;
  switch (spec.backend) {
    case 'file': {
      const { FileStorage } = await import('./file.ts');
      return FileStorage.open(settings.absolutePath(spec.prefixSetting)!);
    }
    case 's3': {
      const { S3Storage } = await import('./s3.ts');
      return S3Storage.open(settings);
    }
    case 'gcs': {
      const { GcsStorage } = await import('./gcs.ts');
      return GcsStorage.open(settings);
    }
    case 'azure': {
      const { AzureStorage } = await import('./azure.ts');
      return AzureStorage.open(settings);
    }
  }
}
