import type { Command } from './types.js';

/** A command listed in `qcbench --help`; its module is loaded only when it runs (keeps start-up fast). */
export interface CommandEntry {
  summary: string;
  load: () => Promise<Command>;
}

/** A command group (`qcbench data …`): sub-commands, each a file `src/cli/<group>-<sub>.ts`. */
export interface GroupEntry {
  summary: string;
  subs: Record<string, CommandEntry>;
}

const sub = (summary: string, load: () => Promise<{ command: Command }>): CommandEntry => ({
  summary,
  load: async () => (await load()).command,
});

/** Every top-level command. Adding one is a file plus a line here. */
export const COMMANDS = {
  env: sub('show Node, engine, execution providers, threads and package versions', () => import('./env.js')),
  validate: sub('resolve and check protocol files; runs nothing', () => import('./validate.js')),
} satisfies Record<string, CommandEntry>;

/** Command groups. */
export const GROUPS = {} satisfies Record<string, GroupEntry>;
