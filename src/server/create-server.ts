import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  McpError,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Envelope } from '../core/envelope.js';
import { envelopeJson } from '../exec/pipeline.js';
import type { DirectHandler } from './stdio-transport.js';
import type { Runtime } from '../exec/runtime.js';
import type { Confirmer } from '../exec/pipeline.js';
import type { CancelSource } from '../exec/call-abort.js';
import { listTools } from './tool-list.js';
import { getPrompt, listPrompts } from './prompts.js';
import { isToolError } from '../core/errors.js';
import { VERSION } from '../version.js';

/** The MCP specification's error code for a resource that does not exist (resources/read). */
const RESOURCE_NOT_FOUND = -32002;

export const SERVER_INSTRUCTIONS = [
  'infra runs ssh, http, psql, repo, runbook, state and artifacts operations through one audited execution layer.',
  'Start with help {"query": "…"} to find the exact schema of an action, a runbook, a target or a profile.',
  'Every tool takes {"action": …}. Every call leaves an artifact (artifact://calls/<call_id>/) and an audit row.',
  'Long actions accept async: true and return a job_id; follow it with the jobs tool.',
  'A remote command that exits non-zero is a result (ok: true, exit_code), not a tool error.',
].join(' ');

/** The text part of a reply: a one-line summary, then the envelope as JSON. */
export function replyText(env: Envelope, envJson = JSON.stringify(env)): string {
  let line: string;
  if (env.ok) {
    const r = env.result as Record<string, unknown> | null;
    const exit = r && typeof r === 'object' && 'exit_code' in r ? ` exit_code=${String(r.exit_code)}` : '';
    const job = env.job_id ? ` job_id=${env.job_id}` : '';
    line = `ok ${env.tool}.${env.action}${exit}${job} (${env.duration_ms} ms) ${env.artifact ?? ''}`.trim();
  } else {
    line = `error ${env.error.code}: ${env.error.message}${env.error.hint ? ` (hint: ${env.error.hint})` : ''}`;
  }
  return `${line}\n${envJson}`;
}

/**
 * The JSON text of toCallResult(env), built around the envelope's JSON when the pipeline
 * already made it (envelopeJson), so a reply serialises the envelope once more, not thrice.
 */
export function callResultJson(env: Envelope): string {
  const json = envelopeJson(env) ?? JSON.stringify(env);
  return `{"content":[{"type":"text","text":${JSON.stringify(replyText(env, json))}}],"structuredContent":${json}${env.ok ? '' : ',"isError":true'}}`;
}

export function toCallResult(env: Envelope): CallToolResult {
  return {
    content: [{ type: 'text', text: replyText(env) }],
    structuredContent: env as unknown as Record<string, unknown>,
    ...(env.ok ? {} : { isError: true }),
  };
}

/** The SDK Server with infra's handlers, and what the stdio wiring needs besides. */
export interface InfraServer extends Server {
  /** Tell clients the tool list changed (policy reload, upstream tools). */
  toolsChanged(): void;
  /** tools/call for GuardedStdioServerTransport.direct (the same handling as the SDK's path). */
  direct: DirectHandler;
}

/**
 * The MCP wiring: the SDK's low-level Server with our own tools/list and tools/call handlers
 * (DESIGN §1), artifacts as resources, logging notifications. `getRuntime` resolves once the
 * project is known (it may wait for the client's roots).
 */
export function createServer(getRuntime: () => Promise<Runtime>): InfraServer {
  const server = new Server(
    { name: 'infra', version: VERSION, title: 'infra' },
    {
      capabilities: { tools: { listChanged: true }, resources: {}, prompts: {}, logging: {} },
      instructions: SERVER_INSTRUCTIONS,
    },
  );

  let cache: { config: unknown; tools: Tool[]; generation: number } | undefined;
  let generation = 0;
  const tools = async (): Promise<Tool[]> => {
    const rt = await getRuntime();
    const config = rt.services.config;
    if (!cache || cache.config !== config || cache.generation !== generation) {
      cache = { config, tools: listTools(rt.pipeline.tools(), rt.services), generation };
    }
    return cache.tools;
  };

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: await tools() }));

  const confirmer: Confirmer = async (req) => {
    const caps = server.getClientCapabilities();
    if (!caps?.elicitation) return false;
    const res = await server.elicitInput({
      message: req.message,
      requestedSchema: {
        type: 'object',
        properties: { confirm: { type: 'boolean', title: `Allow ${req.key}?`, description: 'Check to allow this action once' } },
        required: ['confirm'],
      },
    });
    return res.action === 'accept' && (res.content as Record<string, unknown> | undefined)?.confirm === true;
  };

  let ready: Runtime | undefined;
  /** One tools/call: the SDK's handler and the direct path both come here. */
  const callTool = async (
    name: string,
    args: unknown,
    signal: CancelSource,
    progressToken: string | number | undefined,
  ): Promise<Envelope> => {
    // once the runtime is there, a call does not wait a turn for it
    const rt = ready ?? (ready = await getRuntime());
    let progressCount = 0;
    const client = server.getClientVersion();
    return rt.call(name, args, {
      signal,
      replyBeforeRecorded: true,
      client: { name: client?.name, version: client?.version },
      confirm: server.getClientCapabilities()?.elicitation ? confirmer : undefined,
      onProgress:
        progressToken === undefined
          ? undefined
          : (u) => {
              progressCount++;
              void server
                .notification({
                  method: 'notifications/progress',
                  params: {
                    progressToken,
                    progress: u.progress ?? progressCount,
                    ...(u.total !== undefined ? { total: u.total } : {}),
                    ...(u.message ? { message: u.message } : {}),
                  },
                })
                .catch(() => undefined);
            },
    });
  };
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) =>
    toCallResult(await callTool(request.params.name, request.params.arguments ?? {}, extra.signal, request.params._meta?.progressToken)),
  );

  /*
   * The direct path: a plain tools/call (a name and arguments, nothing else:
   * no _meta, no task) is answered without the SDK's dispatch, which checks each message
   * against four schemas, parses the request twice and the result once more, and copies it.
   * Anything else takes the SDK's path above.
   */
  const direct: DirectHandler = (method, params, signal) => {
    if (method !== 'tools/call') return undefined;
    const { name, arguments: args } = params;
    if (typeof name !== 'string') return undefined;
    for (const k in params) if (k !== 'name' && k !== 'arguments') return undefined;
    // arguments that are not an object (an array, null, a string) go to the pipeline too, which
    // refuses them with INVALID_ARGUMENT and audits the refusal (the SDK's path would answer
    // with a JSON-RPC error quoting its schema, and record nothing)
    return callTool(name, args === undefined ? {} : args, signal, undefined).then(callResultJson);
  };

  // prompts for common workflows, each built on a runbook (one audited run)
  server.setRequestHandler(ListPromptsRequestSchema, () => listPrompts());
  server.setRequestHandler(GetPromptRequestSchema, async (request) => {
    const rt = await getRuntime();
    try {
      return getPrompt(request.params.name, request.params.arguments, rt.services);
    } catch (e) {
      if (isToolError(e)) throw new McpError(ErrorCode.InvalidParams, `${e.message}${e.hint ? ` (${e.hint})` : ''}`);
      throw e;
    }
  });

  server.setRequestHandler(ListResourcesRequestSchema, async () => {
    const rt = await getRuntime();
    await rt.services.audit.settle();
    const rows = rt.services.audit.list({ limit: 50 });
    return {
      resources: rows.map((r) => ({
        uri: `artifact://calls/${r.id}/call.json`,
        name: `${r.tool}.${r.action ?? '?'} ${r.status}`,
        description: r.summary ?? undefined,
        mimeType: 'application/json',
      })),
    };
  });

  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: [
      {
        uriTemplate: 'artifact://calls/{call_id}/{file}',
        name: 'call artifact',
        description: 'A file a call produced: call.json, stdout, stderr, body, rows.csv …',
      },
      {
        uriTemplate: 'artifact://runs/{runbook}/{run_id}/run.json',
        name: 'runbook run',
        description: 'A runbook run, linking its step calls',
        mimeType: 'application/json',
      },
    ],
  }));

  server.setRequestHandler(ReadResourceRequestSchema, async (request) => {
    const rt = await getRuntime();
    const uri = request.params.uri;
    // a bad URI is the client's mistake (-32602) and a missing artifact MCP's resource not found
    // (-32002), not an internal error
    const { type } = await rt.services.artifacts.resolve(uri).catch((e: unknown) => {
      if (isToolError(e) && e.code === 'INVALID_ARGUMENT') throw new McpError(ErrorCode.InvalidParams, e.message);
      if (isToolError(e) && e.code === 'NOT_FOUND') throw new McpError(RESOURCE_NOT_FOUND, e.message, { uri: uri.slice(0, 300) });
      throw e;
    });
    if (type === 'dir') {
      const entries = await rt.services.artifacts.listDir(uri);
      return { contents: [{ uri, mimeType: 'application/json', text: JSON.stringify(entries, null, 2) }] };
    }
    const r = await rt.services.artifacts.read(uri, { maxBytes: 4 * 1024 * 1024 });
    const mimeType = uri.endsWith('.json') ? 'application/json' : r.encoding === 'base64' ? 'application/octet-stream' : 'text/plain';
    return { contents: [r.encoding === 'base64' ? { uri, mimeType, blob: r.content } : { uri, mimeType, text: r.content }] };
  });

  return Object.assign(server, {
    toolsChanged: () => {
      generation++;
      void server.sendToolListChanged().catch(() => undefined);
    },
    direct,
  });
}
