// Remote upstreams: an MCP server over streamable HTTP and one over SSE (the SDK's own server
// transports on node:http, 127.0.0.1, a free port), behind a bearer token that servers.json
// gives by reference. Calls go through the pipeline like a stdio upstream's; the token never
// reaches a record; a wrong token and a server that goes away are reported, not hung on.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { listTools } from '../../src/server/tool-list.js';
import { rig, type Rig } from './helpers.js';

const listed = (r: Rig): string[] => listTools(r.rt.pipeline.tools(), r.rt.services).map((t) => t.name);

const TOKEN = 'remote-token-3b9f61c0d2a84e57';
const WRONG = 'wrong-token-91d7c2e05fa34b68';

/** An MCP server with one read-only tool, `greet`, that says which transport it came over. */
function mcpServer(transport: string): Server {
  const s = new Server({ name: `remote-${transport}`, version: '1.0.0' }, { capabilities: { tools: {} } });
  s.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: [
      {
        name: 'greet',
        description: 'Greets someone by name.',
        inputSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'], additionalProperties: false },
        annotations: { readOnlyHint: true },
      },
    ],
  }));
  s.setRequestHandler(CallToolRequestSchema, (req) => ({
    content: [{ type: 'text', text: `hello ${String(req.params.arguments?.name)} over ${transport}` }],
  }));
  return s;
}

interface Remote {
  url: string;
  /** Authorization headers seen, in order. */
  auth: string[];
  close(): Promise<void>;
}

/** /mcp: streamable HTTP (stateful, a session per initialize); /sse + /messages: the SSE transport. */
async function startRemote(): Promise<Remote> {
  const auth: string[] = [];
  const http = new Map<string, StreamableHTTPServerTransport>();
  const sse = new Map<string, SSEServerTransport>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    auth.push(req.headers.authorization ?? '');
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      // a careless server: the refusal repeats the credential it was given
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: 'unauthorized', got: req.headers.authorization }));
      return;
    }
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/mcp') {
      const sid = req.headers['mcp-session-id'];
      let t = typeof sid === 'string' ? http.get(sid) : undefined;
      if (!t) {
        if (req.method !== 'POST') {
          res.writeHead(400).end('no session');
          return;
        }
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void http.set(id, created),
        });
        await mcpServer('http').connect(created);
        t = created;
      }
      await t.handleRequest(req, res);
      return;
    }
    if (url.pathname === '/sse' && req.method === 'GET') {
      const t = new SSEServerTransport('/messages', res);
      sse.set(t.sessionId, t);
      res.on('close', () => sse.delete(t.sessionId));
      await mcpServer('sse').connect(t);
      return;
    }
    if (url.pathname === '/messages' && req.method === 'POST') {
      const t = sse.get(url.searchParams.get('sessionId') ?? '');
      if (!t) {
        res.writeHead(404).end('no session');
        return;
      }
      await t.handlePostMessage(req, res);
      return;
    }
    res.writeHead(404).end();
  };
  const server: HttpServer = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(e));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    auth,
    close: async () => {
      for (const t of http.values()) await t.close().catch(() => undefined);
      for (const t of sse.values()) await t.close().catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

type Env = { ok: boolean; call_id: string; result?: unknown; error?: { code: string; message: string; hint?: string } };

void describe('remote upstreams over streamable HTTP and SSE', () => {
  let remote: Remote;
  let r: Rig;
  before(async () => {
    remote = await startRemote();
    const headers = { Authorization: 'Bearer ${env:REMOTE_TOKEN}' };
    r = await rig(
      {
        web: { url: `${remote.url}/mcp`, transport: 'http', headers, tools: { allow: ['greet'] } },
        old: { url: `${remote.url}/sse`, transport: 'sse', headers, tools: { allow: ['greet'] } },
        badtoken: { url: `${remote.url}/mcp`, headers: { Authorization: 'Bearer ${env:WRONG_TOKEN}' }, tools: { allow: ['greet'] } },
        badsse: {
          url: `${remote.url}/sse`,
          transport: 'sse',
          headers: { Authorization: 'Bearer ${env:WRONG_TOKEN}' },
          tools: { allow: ['greet'] },
        },
      },
      { env: { REMOTE_TOKEN: TOKEN, WRONG_TOKEN: WRONG } },
    );
  });
  after(async () => {
    await r?.close();
    await remote?.close();
  });

  for (const [name, transport] of [
    ['web', 'http'],
    ['old', 'sse'],
  ] as const) {
    void it(`${transport}: connects with the referenced token, lists and calls the allowed tool through the pipeline`, async () => {
      await r.rt.federation.connect(name);
      r.rt.federation.approve(name);
      const status = r.rt.serverStatuses().find((s) => s.name === name);
      assert.equal(status?.status, 'connected', JSON.stringify(status));
      assert.equal(status?.transport, transport);
      const e = (await r.rt.call(`${name}__greet`, { name: 'ada' })) as unknown as Env;
      assert.equal(e.ok, true, JSON.stringify(e));
      assert.match(JSON.stringify(e.result), new RegExp(`hello ada over ${transport}`));
      const invalid = (await r.rt.call(`${name}__greet`, { nom: 'x' })) as unknown as Env;
      assert.equal(invalid.error?.code, 'INVALID_ARGUMENT');
      const row = r.rt.services.audit.list({ tool: `${name}__greet`, limit: 5 });
      assert.deepEqual(
        row.map((x) => x.status),
        ['invalid', 'ok'],
      );
      // the token went to the server, and to no record of ours
      assert.ok(remote.auth.includes(`Bearer ${TOKEN}`));
      const callJson = readFileSync(join(r.rt.project.artifactsDir, 'calls', e.call_id, 'call.json'), 'utf8');
      assert.ok(!callJson.includes(TOKEN));
      assert.ok(!JSON.stringify(r.rt.serverStatuses()).includes(TOKEN));
    });
  }

  void it('a refused token is AUTH_FAILED with the HTTP status, not retried, and the echoed token is redacted everywhere', async () => {
    const before = remote.auth.length;
    await assert.rejects(r.rt.federation.connect('badtoken'), (e: { code?: string }) => e.code === 'AUTH_FAILED');
    const status = r.rt.serverStatuses().find((s) => s.name === 'badtoken')!;
    assert.equal(status.status, 'failed');
    assert.match(status.reason ?? '', /refused the credentials: HTTP 401/);
    assert.match(status.hint ?? '', /servers\.json/);
    assert.ok(!listed(r).some((n) => n.startsWith('badtoken__')));
    const e = (await r.rt.call('badtoken__greet', { name: 'x' })) as unknown as Env;
    assert.equal(e.ok, false);
    assert.match(JSON.stringify(e.error), /badtoken/);
    // the server saw the token; nothing infra shows or keeps repeats it
    assert.ok(remote.auth.slice(before).includes(`Bearer ${WRONG}`));
    assert.ok(!JSON.stringify(r.rt.serverStatuses()).includes(WRONG));
    assert.ok(!JSON.stringify(e).includes(WRONG));
    assert.ok(!JSON.stringify(r.rt.services.audit.list({ limit: 50 })).includes(WRONG));
    // a refused credential is not retried on its own: no new attempt within the first backoff
    const seen = remote.auth.length;
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal(remote.auth.length, seen);
  });

  void it('sse: a refused token is AUTH_FAILED with the HTTP status too', async () => {
    await assert.rejects(r.rt.federation.connect('badsse'), (e: { code?: string }) => e.code === 'AUTH_FAILED');
    const status = r.rt.serverStatuses().find((s) => s.name === 'badsse')!;
    assert.match(status.reason ?? '', /refused the credentials: HTTP 401/);
    assert.ok(!JSON.stringify(status).includes(WRONG));
  });
});
