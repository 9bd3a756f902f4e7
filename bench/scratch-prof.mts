export {};
import { createRuntime } from '../src/exec/runtime.js';
import { startHttpServer } from '../test/fixtures/http-server.js';
import { makeProject } from '../test/helpers/project.js';
const srv = await startHttpServer();
const project = makeProject({});
const rt = await createRuntime({ projectDir: project.infraDir, env: { ...process.env, INFRA_LOG_LEVEL: 'warn' } });
async function m(name: string, fn: () => Promise<unknown>) {
  for (let i = 0; i < 200; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const s = performance.now();
    await fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  console.log(name, 'p50', t[500]!.toFixed(3), 'p95', t[950]!.toFixed(3));
}
await rt.call('state', { action: 'set', key: 'k', value: 1 });
await m('state.get', () => rt.call('state', { action: 'get', key: 'k' }));
await m('http', () => rt.call('http', { action: 'request', url: srv.url + '/text' }));
await m('http HEAD', () => rt.call('http', { action: 'request', url: srv.url + '/text', method: 'HEAD' }));
await rt.close();
await srv.close();
project.cleanup();
