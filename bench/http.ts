/**
 * http tool latency on a warm origin, in one run (issue 5):
 *   raw      – undici request on a keep-alive Pool (the floor for the HTTP part)
 *   sdk      – a bare MCP SDK round trip (low-level Server, trivial tool, in-memory transport)
 *   rt.call  – http.request through the pipeline (validation, policy, audit row, artifacts)
 *   mcp      – the same through infra's MCP server and an SDK Client (in-memory transport)
 * Target: mcp p50 ≤ 1.5 × (raw p50 + sdk p50).
 *
 * Run: node --import tsx bench/http.ts [iterations]
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Pool } from 'undici';
import { createRuntime } from '../src/exec/runtime.js';
import { createServer } from '../src/server/create-server.js';
import { startHttpServer } from '../test/fixtures/http-server.js';
import { makeProject } from '../test/helpers/project.js';

const N = Number(process.argv[2] ?? 2000);
const WARM = Math.min(200, Math.ceil(N / 5));

interface Stats {
  p50: number;
  p95: number;
  mean: number;
}

async function measure(name: string, fn: () => Promise<void>): Promise<Stats> {
  for (let i = 0; i < WARM; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < N; i++) {
    const s = performance.now();
    await fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  const at = (q: number): number => t[Math.min(t.length - 1, Math.floor(q * t.length))]!;
  const st = { p50: at(0.5), p95: at(0.95), mean: t.reduce((a, b) => a + b, 0) / t.length };
  process.stdout.write(`${name.padEnd(34)} p50 ${st.p50.toFixed(3)} ms   p95 ${st.p95.toFixed(3)} ms   mean ${st.mean.toFixed(3)} ms\n`);
  return st;
}

async function bareSdk(): Promise<{ client: Client; close: () => Promise<void> }> {
  const server = new Server({ name: 'bare', version: '0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [{ name: 'ping', description: 'ping', inputSchema: { type: 'object', properties: {} } }],
  }));
  server.setRequestHandler(CallToolRequestSchema, async () => ({ content: [{ type: 'text', text: 'pong' }] }));
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'bench', version: '0' });
  await Promise.all([server.connect(a), client.connect(b)]);
  return { client, close: async () => void (await client.close(), await server.close()) };
}

async function main(): Promise<void> {
  const srv = await startHttpServer();
  const url = `${srv.url}/text`;
  const project = makeProject({ 'profiles.json': { api: { type: 'http', base_url: srv.url } } });
  const rt = await createRuntime({ projectDir: project.infraDir, env: { ...process.env, INFRA_LOG_LEVEL: 'warn' } });
  process.stdout.write(`http bench: GET ${url} (12-byte text body), ${N} iterations after ${WARM} warm-up, node ${process.version}\n`);

  const pool = new Pool(srv.url, { connections: 4, keepAliveTimeout: 30_000 });
  const raw = await measure('raw undici (keep-alive Pool)', async () => {
    const r = await pool.request({ path: '/text', method: 'GET' });
    await r.body.text();
  });

  const bare = await bareSdk();
  const sdk = await measure('bare SDK round trip (in-memory)', async () => {
    await bare.client.callTool({ name: 'ping', arguments: {} });
  });

  const viaRt = await measure('infra rt.call http.request', async () => {
    const e = await rt.call('http', { action: 'request', url });
    if (!e.ok) throw new Error(JSON.stringify(e.error));
  });

  const mcpServer = createServer(async () => rt);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'bench', version: '0' });
  await Promise.all([mcpServer.connect(a), client.connect(b)]);
  await client.listTools();
  const viaMcp = await measure('infra over MCP (in-memory Client)', async () => {
    const r = await client.callTool({ name: 'http', arguments: { action: 'request', url } });
    if (r.isError) throw new Error(JSON.stringify(r.structuredContent));
  });

  const floor = raw.p50 + sdk.p50;
  process.stdout.write(
    [
      ``,
      `overhead of the pipeline   rt.call p50 − raw p50 = ${(viaRt.p50 - raw.p50).toFixed(3)} ms  (ratio ${(viaRt.p50 / raw.p50).toFixed(2)}× raw)`,
      `target: mcp p50 ≤ 1.5 × (raw p50 + sdk p50) = 1.5 × ${floor.toFixed(3)} = ${(1.5 * floor).toFixed(3)} ms`,
      `result: mcp p50 ${viaMcp.p50.toFixed(3)} ms = ${(viaMcp.p50 / floor).toFixed(2)}× (raw + sdk)  → ${viaMcp.p50 <= 1.5 * floor ? 'WITHIN' : 'OVER'} target`,
      ``,
    ].join('\n'),
  );

  await client.close();
  await mcpServer.close();
  await bare.close();
  await pool.close();
  await rt.close();
  await srv.close();
  project.cleanup();
}

main().catch((e: unknown) => {
  process.stderr.write(`${String((e as Error)?.stack ?? e)}\n`);
  process.exit(1);
});
