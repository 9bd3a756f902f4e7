import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
let lastTime = -1;
let lastRandom = new Uint8Array(10);

export function encodeTime(ms: number): string {
  let out = '';
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 80 bits -> 16 base32 chars
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += CROCKFORD[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

// random bytes drawn 4 KiB at a time: one getrandom per 400 ids instead of one per id
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomTen(): Uint8Array<ArrayBuffer> {
  if (poolAt + 10 > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  const out = new Uint8Array(10);
  out.set(pool.subarray(poolAt, poolAt + 10));
  poolAt += 10;
  return out;
}

/**
 * A monotonic ULID (26 chars, lexically sortable by creation time). Written here rather than
 * taken from the `ulid` package because that one is ESM-only at its current major and we keep
 * one small, synchronous id source on the hot path.
 */
export function ulid(now = Date.now()): string {
  if (now <= lastTime) {
    // same millisecond: increment the random part so ids stay strictly increasing
    const next = new Uint8Array(lastRandom);
    for (let i = next.length - 1; i >= 0; i--) {
      if (next[i] === 255) {
        next[i] = 0;
      } else {
        next[i] = (next[i] ?? 0) + 1;
        break;
      }
    }
    lastRandom = next;
    now = lastTime;
  } else {
    lastTime = now;
    lastRandom = randomTen();
  }
  return encodeTime(now) + encodeRandom(lastRandom);
}

export const newCallId = (): string => `c_${ulid()}`;
export const newJobId = (): string => `j_${ulid()}`;
