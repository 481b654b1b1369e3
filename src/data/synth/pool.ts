/**
 * A pool of worker threads running a TypeScript worker module. Workers do not inherit the tsx loader that runs
 * qcbench's sources, so each starts from a tiny ESM bootstrap that registers tsx and then imports the module.
 * Jobs go to the least busy worker; idle workers do not keep the process alive.
 */
import { Worker } from 'node:worker_threads';
import { QcbError } from '../../errors.js';

export class WorkerPool<Job extends { id: number }, Result> {
  private readonly slots: { w: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, { resolve: (v: Result) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  /**
   * @param entry URL of the worker module (e.g. `new URL('./field-worker.ts', import.meta.url)`)
   * @param n number of threads
   * @param unwrap turns a reply into the result, or throws
   */
  constructor(
    entry: URL,
    n: number,
    private readonly unwrap: (reply: { id: number; error?: string } & Record<string, unknown>) => Result,
  ) {
    const api = import.meta.resolve('tsx/esm/api');
    const code = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(entry.href)});`;
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`));
      const slot = { w, busy: 0 };
      w.on('message', (reply: { id: number; error?: string } & Record<string, unknown>) => {
        slot.busy--;
        if (slot.busy === 0) w.unref();
        const p = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (!p) return;
        if (reply.error !== undefined) {
          p.reject(
            new QcbError('QCB_INTERNAL', `worker thread failed: ${reply.error}`, {
              fix: 'please report this with the command you ran',
            }),
          );
          return;
        }
        try {
          p.resolve(this.unwrap(reply));
        } catch (e) {
          p.reject(e as Error);
        }
      });
      w.on('error', (e) => {
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      });
      w.unref();
      this.slots.push(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /** Sends a job (its `id` is assigned here) and resolves with the worker's result. */
  run(job: Omit<Job, 'id'>, transfer: ArrayBuffer[] = []): Promise<Result> {
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    slot.busy++;
    slot.w.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      slot.w.postMessage({ ...job, id }, transfer);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.w.terminate()));
  }
}
