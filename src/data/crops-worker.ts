/**
 * Worker thread of the crop-extraction pool (see FieldPool in crops.ts): decodes, segments and crops one field per
 * message and transfers the crop buffer back.
 */
import { parentPort } from 'node:worker_threads';
import { handleJob } from './crops.js';

if (!parentPort) throw new Error('crops-worker.ts must run in a worker thread');
const port = parentPort;
port.on('message', async (job) => {
  const { reply, transfer } = await handleJob(job);
  port.postMessage(reply, transfer);
});
