/** TEST DATA: the synthetic results generator lives in src/reports/synthetic-results.ts (also used by `qcbench bench report`). */
export * from '../../src/reports/synthetic-results.js';
