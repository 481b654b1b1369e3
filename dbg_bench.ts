import { command } from './src/cli/bench-ssl.js';
import { logger } from './src/util/log.js';
const code = await command.run(process.argv.slice(2), { log: logger });
process.exitCode = code;
