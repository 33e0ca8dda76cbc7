// The one constant-time comparison of secrets (API keys, signatures): node:crypto's
// timingSafeEqual over SHA-256 digests, so inputs of any lengths take the same time and a
// mismatch in length reveals nothing either.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (value: string | Uint8Array) => createHash('sha256').update(value).digest();

/** Whether `a` and `b` are equal (strings as UTF-8), in time independent of where they differ. */
export function secureEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  return timingSafeEqual(digest(a), digest(b));
}
