/** A short pretraining of one method on a small set of generated crops (shared by the test/ssl/pretrain-*.test.ts files). */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/util/fs.js';
import { Logger } from '../../src/util/log.js';
import { memoryCropSource, pretrain, type PretrainOptions, type PretrainResult } from '../../src/ssl/pretrain.js';
import { makeCrops, type TestCrops } from './_crops.js';

/** 4 synthetic u2os fields → ~90 crops of 3×32×32, cached in the temp dir across test files. */
export function testCrops(): TestCrops {
  const file = join(tmpdir(), 'qcbench-ssl-test-crops-v1.json');
  if (existsSync(file)) {
    try {
      const j = JSON.parse(readFileSync(file, 'utf8'));
      return { ...j, data: Uint8Array.from(Buffer.from(j.data, 'base64')) };
    } catch {
      // a partial file from a concurrent writer cannot exist (atomic), but a foreign one can: regenerate
    }
  }
  const c = makeCrops(4);
  writeFileAtomic(file, JSON.stringify({ ...c, data: Buffer.from(c.data).toString('base64') }));
  return c;
}

export const quietLog = new Logger({ level: 'warn' });

/** Small settings: projector 256/64, batch 16, 32 images (2 steps per epoch). */
export async function shortPretrain(
  method: string,
  o: Partial<PretrainOptions> = {},
): Promise<{ res: PretrainResult; dir: string; cleanup(): void }> {
  const c = testCrops();
  const dir = mkdtempSync(join(tmpdir(), `qcb-ssl-${method}-`));
  const hyper: Record<string, number> = { proj_hidden_dim: 256, proj_output_dim: 64, ...(o.hyper ?? {}) };
  const res = await pretrain({
    method,
    source: memoryCropSource(c.data, c.n, c.channels, c.size, 'test-crops'),
    outDir: dir,
    epochs: 5,
    batchSize: 16,
    maxImagesPerEpoch: 32,
    lr: 0.05,
    warmupEpochs: 1,
    log: quietLog,
    ...o,
    hyper,
  });
  return { res, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Mean loss of the first and the last `k` steps. */
export function ends(loss: { loss: number }[], k = 2): { first: number; last: number } {
  const mean = (xs: { loss: number }[]) => xs.reduce((a, p) => a + p.loss, 0) / xs.length;
  return { first: mean(loss.slice(0, k)), last: mean(loss.slice(-k)) };
}
