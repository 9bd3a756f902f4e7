import { createHash, hash } from 'node:crypto';

/**
 * SHA-256 of a small value, hex. `crypto.hash` (one call, no Hash object) is half the cost of
 * createHash().update().digest() for the sizes a call records; Node 20 before 20.12 has none.
 */
export const sha256Hex: (data: string | Uint8Array) => string =
  typeof hash === 'function' ? (data) => hash('sha256', data, 'hex') : (data) => createHash('sha256').update(data).digest('hex');
