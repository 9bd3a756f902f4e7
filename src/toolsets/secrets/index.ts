import { z } from 'zod';
import { defineAction, defineTool } from '../../core/define-action.js';
import { notFound } from '../../core/errors.js';
import { parseRefs, refLabel, type SecretRef } from '../../config/secret-refs.js';
import { secretStoreOf } from '../../secrets/store.js';
import { collectReferences, resolution, type ReferenceInfo } from './references.js';

export interface ListResult {
  references: ReferenceInfo[];
  /** Names in the encrypted store (values never), and whether a config file refers to them. */
  store: { path: string; key_source: string; names: { name: string; referenced: boolean; updated_at: string }[]; problems: string[] };
  missing: number;
  export_allowed: boolean;
}

const listAction = defineAction({
  tool: 'secrets',
  action: 'list',
  effect: 'read',
  description:
    'Every secret reference in targets.json, profiles.json and servers.json (${env:…}, ${secret:…}, ${file:…}) with where it resolves from (env, file, store, missing) and which entries use it, plus the names in the encrypted store. Never values.',
  input: z.strictObject({
    query: z.string().max(200).optional().describe('Only references or names containing this text'),
  }),
  summarize: (r: ListResult) => `${r.references.length} references (${r.missing} missing), ${r.store.names.length} stored secrets`,
  handler: async (ctx, a): Promise<ListResult> => {
    const services = ctx.services;
    const q = a.query?.toLowerCase();
    const refs = collectReferences(services).filter(
      (r) => !q || r.ref.toLowerCase().includes(q) || r.used_by.some((u) => u.toLowerCase().includes(q)),
    );
    const store = secretStoreOf(services);
    const status = store.status();
    const referenced = new Set(
      collectReferences(services)
        .filter((r) => r.kind === 'secret')
        .map((r) => r.name),
    );
    let entries: { name: string; updated_at: string }[] = [];
    try {
      entries = store.entries();
    } catch {
      /* reported in problems */
    }
    return {
      references: refs,
      store: {
        path: status.path,
        key_source: status.key_source,
        names: entries.filter((e) => !q || e.name.toLowerCase().includes(q)).map((e) => ({ ...e, referenced: referenced.has(e.name) })),
        problems: status.problems.map((p) => `${p.message} (fix: ${p.fix})`),
      },
      missing: refs.filter((r) => r.resolves_from === 'missing').length,
      export_allowed: services.flags.allowSecretExport,
    };
  },
});

export interface GetResult {
  ref: string;
  resolves_from: string;
  /** Present only in the reply to the client; never in call.json, the audit or a parent's result. */
  value?: string;
  note: string;
}

const getAction = defineAction({
  tool: 'secrets',
  action: 'get',
  effect: 'read',
  description:
    'The value of one secret: a name in the encrypted store, or a reference that secrets list shows (env:NAME, secret:NAME, file:path). Only with INFRA_ALLOW_SECRET_EXPORT=1; audited without the value.',
  input: z.strictObject({
    name: z
      .string()
      .min(1)
      .max(1024)
      .describe('A stored secret name, or a reference label from secrets list (env:NAME, secret:NAME, file:path)'),
  }),
  enabledBy: {
    check: (s) => s.flags.allowSecretExport,
    hint: 'secret values never reach the agent by default; a human can allow it by starting infra with INFRA_ALLOW_SECRET_EXPORT=1',
  },
  target: (a) => a.name,
  summarize: (r: GetResult) => `exported ${r.ref} from ${r.resolves_from} (value not recorded)`,
  handler: async (ctx, a): Promise<GetResult> => {
    const services = ctx.services;
    const refs = collectReferences(services);
    const store = secretStoreOf(services);
    let ref: SecretRef | undefined;
    const asLabel = refs.find((r) => r.ref === a.name);
    if (asLabel) ref = parseRefs(`\${${asLabel.kind}:${asLabel.name}}`)[0];
    else {
      let names: string[] = [];
      try {
        names = store.names();
      } catch {
        /* unreadable store: NOT_FOUND below */
      }
      const bare = a.name.startsWith('secret:') ? a.name.slice('secret:'.length) : a.name;
      if (names.includes(bare)) ref = { kind: 'secret', name: bare, raw: `\${secret:${bare}}` };
    }
    // only what the config refers to or the store holds: never an arbitrary environment variable or file
    if (!ref) {
      throw notFound(
        `no secret named ${JSON.stringify(a.name)} in the store or the config references`,
        'secrets {"action":"list"} shows the references and stored names',
      );
    }
    const value = services.secrets.lookup(ref);
    const from = resolution(services, ref);
    if (value === undefined) {
      throw notFound(
        `${refLabel(ref)} is not set`,
        refs.find((r) => r.ref === refLabel(ref!))?.hint ?? 'secrets {"action":"list"} says how to set it',
      );
    }
    // everywhere else it stays redacted
    services.redactor.addSecret(value);
    ctx.replyOnly({ value });
    return {
      ref: refLabel(ref),
      resolves_from: from,
      note: 'the value is in this reply only; call.json and the audit row record the call without it',
    };
  },
});

export const secretsTool = defineTool({
  name: 'secrets',
  title: 'Secrets',
  description:
    'Secret references of the config files and the encrypted store: list shows names and where each resolves from (never values); get returns a value only when a human started infra with INFRA_ALLOW_SECRET_EXPORT=1.',
  actions: [listAction, getAction],
});
