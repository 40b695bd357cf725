/** zstd-napi's native addon, inside the single executable: an embedded asset (see sea/native-addon.ts). */
import { loadAddonFromAsset } from '../../sea/native-addon.ts';

export function loadZstdBindingFromAsset(): unknown {
  return loadAddonFromAsset('zstd-napi.node');
}
