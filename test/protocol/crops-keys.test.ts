/**
 * `data.datasets.<name>.crops` (normalise, diameter, border, dna_channel) and `format: store` datasets: defaults,
 * refusals (unknown keys with "did you mean", bad values, keys that would not act), and their place in the ids —
 * written settings enter the crop store's id, the protocol hash ignores defaults and a store's path.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as D from '../../src/protocol/defaults.js';
import { ProtocolError, protocolHash } from '../../src/protocol/resolve.js';
import { loadProtocol } from '../../src/runner/catalog.js';
import { datasetId } from '../../src/runner/cells.js';

const dir = mkdtempSync(join(tmpdir(), 'qcb-crops-keys-'));

function protocol(datasets: string, name = 'p.yaml'): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    `version: 1
name: keys
encoders: [random-resnet18]
data:
  pretrain_on: s
  datasets:
${datasets}
evaluations:
  - { tasks: [knn], budgets: [10] }
`,
  );
  return file;
}

const load = (datasets: string) => loadProtocol(protocol(datasets), { env: {}, workdir: join(dir, 'w') });

function issues(datasets: string): Map<string, { code: string; message: string; fix: string }> {
  try {
    load(datasets);
  } catch (e) {
    assert.ok(e instanceof ProtocolError, String(e));
    assert.equal(e.exitCode, 2);
    return new Map(e.issues.map((i) => [i.path.join('.'), i]));
  }
  assert.fail('the protocol should be refused');
}

const CSV = (crops = '') =>
  `    s: { format: csv, root: fields, image_table: fields.csv, annotations: ann.csv${crops ? `, crops: ${crops}` : ''} }`;

test('crops: defaults filled, written values kept', () => {
  assert.deepEqual(load(CSV()).data.datasets.s.crops, { ...D.CROPS });
  assert.deepEqual(D.CROPS, { normalise: 'plate', diameter: 30, border: 'skip' });
  const p = load(CSV('{ normalise: field, diameter: 18, border: reflect, dna_channel: dna }'));
  assert.deepEqual(p.data.datasets.s.crops, {
    normalise: 'field',
    diameter: 18,
    border: 'reflect',
    dna_channel: 'dna',
  });
});

test('crops: every key enters the crop store id; defaults and paths keep the protocol hash', () => {
  const id = (crops: string) => datasetId(load(CSV(crops)), 's');
  const base = id('');
  assert.equal(id('{ normalise: plate, diameter: 30, border: skip }'), base, 'the defaults written out');
  const changed = ['{ normalise: field }', '{ diameter: 20 }', '{ border: pad }', '{ dna_channel: dna }'].map(id);
  assert.equal(new Set([base, ...changed]).size, 5, 'each setting gives another store');
  // the protocol hash: unchanged by writing the defaults, changed by a setting
  const h = (crops: string) => protocolHash(load(CSV(crops)));
  assert.equal(h('{ normalise: plate }'), h(''));
  assert.notEqual(h('{ diameter: 20 }'), h(''));
  // a store data set: its content (none here) identifies it, not its path
  const s1 = load('    s: { format: store, path: a/store, annotations: ann.csv }');
  const s2 = load('    s: { format: store, path: b/elsewhere, annotations: ann.csv }');
  assert.equal(datasetId(s1, 's'), datasetId(s2, 's'));
  assert.equal(protocolHash(s1), protocolHash(s2));
});

test('crops: unknown keys, bad values and keys that would not act are coded errors', () => {
  const typo = issues(CSV('{ diamter: 20 }')).get('data.datasets.s.crops.diamter');
  assert.equal(typo?.code, 'QCB_PROTOCOL_KEY');
  assert.match(typo?.fix ?? '', /diameter/);
  const mode = issues(CSV('{ normalise: plates }')).get('data.datasets.s.crops.normalise');
  assert.ok(mode);
  assert.match(`${mode.message} ${mode.fix}`, /plate/);
  assert.equal(issues(CSV('{ diameter: 2 }')).get('data.datasets.s.crops.diameter')?.code, 'QCB_PROTOCOL_VALUE');
  assert.ok(issues(CSV('{ border: wrap }')).get('data.datasets.s.crops.border'));
  // segmentation settings where nuclei are not segmented
  const synth = issues('    s: { format: synthetic, annotations: ann.csv, crops: { diameter: 20 } }');
  assert.match(synth.get('data.datasets.s.crops.diameter')?.message ?? '', /segmentation setting/);
  // two different DNA channels
  const two = issues(
    '    s: { format: csv, root: f, image_table: f.csv, dna_channel: dapi, crops: { dna_channel: hoechst } }',
  );
  assert.equal(two.get('data.datasets.s.crops.dna_channel')?.code, 'QCB_PROTOCOL_VALUE');
});

test('format store: needs a path and takes no cutting keys; path is for stores only', () => {
  assert.equal(
    issues('    s: { format: store, annotations: ann.csv }').get('data.datasets.s.path')?.code,
    'QCB_PROTOCOL_KEY',
  );
  const extra = issues('    s: { format: store, path: st, root: r, crops: { border: pad }, annotations: ann.csv }');
  assert.match(extra.get('data.datasets.s.crops')?.message ?? '', /already cut/);
  assert.ok(extra.get('data.datasets.s.root'));
  const csv = issues('    s: { format: csv, root: f, image_table: f.csv, path: st }');
  assert.match(csv.get('data.datasets.s.path')?.message ?? '', /for format store/);
  const typo = issues('    s: { format: stor, path: st }').get('data.datasets.s.format');
  assert.match(`${typo?.message} ${typo?.fix}`, /store/);
});
