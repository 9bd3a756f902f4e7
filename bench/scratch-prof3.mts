export {};
import { createRuntime } from '../src/exec/runtime.js';
import { startHttpServer } from '../test/fixtures/http-server.js';
import { makeProject } from '../test/helpers/project.js';
const srv = await startHttpServer();
const project = makeProject({});
const rt = await createRuntime({ projectDir: project.infraDir, env: { ...process.env, INFRA_LOG_LEVEL: 'warn' } });
async function m(fn: () => Promise<unknown>) {
  const N = 3000;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await fn();
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1000 / N, wall: (performance.now() - t0) / N };
}
await rt.call('state', { action: 'set', key: 'k', value: 1 });
for (let r = 0; r < 3; r++) {
  const a = await m(() => rt.call('state', { action: 'get', key: 'k' }));
  const b = await m(() => rt.call('http', { action: 'request', url: srv.url + '/text' }));
  console.log(`state cpu ${a.cpu.toFixed(3)} wall ${a.wall.toFixed(3)} | http cpu ${b.cpu.toFixed(3)} wall ${b.wall.toFixed(3)}`);
}
await rt.close();
await srv.close();
project.cleanup();
