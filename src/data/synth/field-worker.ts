/**
 * Worker thread that renders synthetic fields (renderField is a pure function of its spec, so fields render in
 * parallel and the screen stays byte-identical whatever the number of workers).
 */
import { parentPort } from 'node:worker_threads';
import { type FieldSpec, type RenderedField, renderField } from './field.js';

export interface FieldJob {
  id: number;
  spec: FieldSpec;
}

export interface FieldReply {
  id: number;
  field?: RenderedField;
  error?: string;
}

parentPort?.on('message', (job: FieldJob) => {
  try {
    const field = renderField(job.spec);
    parentPort?.postMessage(
      { id: job.id, field } satisfies FieldReply,
      field.channels.map((c) => c.buffer as ArrayBuffer),
    );
  } catch (e) {
    parentPort?.postMessage({
      id: job.id,
      error: e instanceof Error ? (e.stack ?? e.message) : String(e),
    } satisfies FieldReply);
  }
});
