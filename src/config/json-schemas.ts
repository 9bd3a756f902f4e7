import { z } from 'zod';
import { CONFIG_FILES } from './schemas.js';

/** JSON Schemas of the config files, generated from the zod schemas (schemas/ and `infra init`). */
export function configJsonSchemas(): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [file, schema] of Object.entries(CONFIG_FILES)) {
    const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    json.$schema = 'https://json-schema.org/draft/2020-12/schema';
    json.title = file;
    out[file.replace(/\.json$/, '.schema.json')] = json;
  }
  return out;
}
