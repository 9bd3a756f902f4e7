// StatementBatch (src/adapters/pg-batch.ts) on a raw pg connection to a real cluster: the
// contract runReadOnly relies on when a read's results come back before its cleanup has run.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { StatementBatch, type BatchStep } from '../../src/adapters/pg-batch.js';
import { startPostgres, type PgCluster } from '../fixtures/postgres.js';

let cluster: PgCluster;
let client: pg.Client;
const lookup = (oid: number): ((t: string) => unknown) => pg.types.getTypeParser(oid, 'text') as (t: string) => unknown;

void before(async () => {
  cluster = await startPostgres({ tables: false });
  client = new pg.Client({ connectionString: cluster.url('reader') });
  await client.connect();
});
void after(async () => {
  await client?.end();
  cluster?.stop();
});

function run(steps: BatchStep[], settleAfter?: number): StatementBatch {
  const batch = new StatementBatch(steps, lookup, { settleAfter });
  void client.query(batch as never);
  return batch;
}

/** The transaction status of the last ReadyForQuery ('I' idle, 'T' in a transaction, 'E' failed). */
function txStatus(): string {
  return (client as unknown as { _txStatus?: string })._txStatus ?? '?';
}

void describe('statement batch with settleAfter', () => {
  void test('the results arrive while the tail is still running on the server; finished says when it ended', async () => {
    // the tail sleeps 1 s: the results must not wait for it
    const started = Date.now();
    const batch = run(
      [{ text: 'BEGIN READ ONLY' }, { text: "SELECT 'r' AS v", rows: { keep: 10 } }, { text: 'SELECT pg_sleep(1)' }, { text: 'ROLLBACK' }],
      2,
    );
    const results = await batch.promise;
    const resultsAfter = Date.now() - started;
    assert.deepEqual(results[1]!.rows, [['r']]);
    assert.ok(resultsAfter < 900, `results after ${resultsAfter} ms, before the 1 s tail ended`);
    assert.equal(await batch.finished, true);
    assert.ok(Date.now() - started >= 1000, 'finished only after the tail ran');
    assert.equal(txStatus(), 'I', 'the tail rolled the transaction back');
  });

  void test('a failing statement rejects with its step; the tail is skipped and the connection is left in a failed transaction to clean up', async () => {
    const batch = run([{ text: 'BEGIN READ ONLY' }, { text: 'SELECT 1/0' }, { text: 'ROLLBACK' }], 2);
    await assert.rejects(batch.promise, (e: Error & { step?: number; code?: string }) => e.code === '22012' && e.step === 1);
    assert.equal(await batch.finished, true, "a failure before the results is the caller's to handle, not a failed tail");
    // the tail's ROLLBACK was skipped with the rest: the transaction is still open, and failed
    await assert.rejects(client.query('SELECT 1'), (e: Error & { code?: string }) => e.code === '25P02');
    await client.query('ROLLBACK');
    assert.equal(txStatus(), 'I');
  });

  void test('a failing tail (after the results went back) makes finished false', async () => {
    const batch = run(
      [{ text: 'BEGIN READ ONLY' }, { text: 'SELECT 7 AS v', rows: { keep: 1 } }, { text: 'SELECT 1/0' }, { text: 'ROLLBACK' }],
      2,
    );
    const results = await batch.promise;
    assert.deepEqual(results[1]!.rows, [[7]]);
    assert.equal(await batch.finished, false);
    await client.query('ROLLBACK');
  });

  void test('settleAfter must leave steps on both sides', () => {
    assert.throws(() => new StatementBatch([{ text: 'SELECT 1' }], lookup, { settleAfter: 1 }), /settleAfter/);
    assert.throws(() => new StatementBatch([{ text: 'SELECT 1' }, { text: 'SELECT 2' }], lookup, { settleAfter: 0 }), /settleAfter/);
  });
});
