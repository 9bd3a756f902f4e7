import * as sea from 'node:sea';
import { bootstrapSea } from './bootstrap.js';

// Imported first by src/sea/main.ts so it runs before any other module's top level.
try {
  bootstrapSea({
    isSea: () => sea.isSea(),
    getRawAsset: (key) => {
      const raw = sea.getRawAsset(key);
      if (typeof raw === 'string') throw new Error(`SEA asset ${key} came back as a string`);
      return raw;
    },
  });
} catch (e) {
  process.stderr.write(`infra: cannot start: ${(e as Error).message}\n`);
  process.exit(1);
}
