export {};
import { createRuntime } from '../src/exec/runtime.js';
import { startHttpServer } from '../test/fixtures/http-server.js';
import { makeProject } from '../test/helpers/project.js';
const srv = await startHttpServer();
const project = makeProject({});
const rt = await createRuntime({ projectDir: project.infraDir, env: { ...process.env, INFRA_LOG_LEVEL: 'warn' } });
async function m(name: string, fn: () => Promise<unknown>) {
  const t: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const s = performance.now();
    await fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return t[1500]!;
}
await rt.call('state', { action: 'set', key: 'k', value: 1 });
const res: Record<string, number[]> = { state: [], http: [] };
for (let r = 0; r < 5; r++) {
  res.state!.push(await m('state.get', () => rt.call('state', { action: 'get', key: 'k' })));
  res.http!.push(await m('http', () => rt.call('http', { action: 'request', url: srv.url + '/text' })));
}
for (const [k, v] of Object.entries(res)) console.log(k, v.map((x) => x.toFixed(3)).join(' '), 'min', Math.min(...v).toFixed(3));
await rt.close();
await srv.close();
project.cleanup();
