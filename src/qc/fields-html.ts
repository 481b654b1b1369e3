/**
 * OUT/fields.html of `qcbench qc apply`: the page a person opens to see why fields were flagged — the field and
 * plate maps, the count of each reason, and every flagged field with its reasons, the measures that left the
 * screen's range (or the read error) and the montage of its well.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import { escapeHtml as esc } from '../util/html.js';
import type { FieldVerdict } from './fields.js';

/**
 * Writes `fields.html` into `out`; `maps` are the map files written beside it (SVGs are shown), `montage` gives a
 * well's montage file (relative to out) when there is one; `model` names the QC model and what it calls abnormal.
 */
export function writeFieldsHtml(
  out: string,
  fields: readonly FieldVerdict[],
  maps: readonly string[],
  montage: (plate: string, well: string) => string | undefined,
  model?: { encoder: string; task: string; artefacts?: readonly string[]; threshold: number },
): string {
  const flagged = fields.filter((f) => f.verdict === 'flagged');
  const counts = new Map<string, number>();
  for (const f of flagged) for (const r of f.reasons.split(';')) counts.set(r, (counts.get(r) ?? 0) + 1);
  const rows = flagged
    .map((f) => {
      const m = montage(f.plate, f.well);
      return `<tr><td>${esc(f.field_id)}</td><td>${esc(f.plate)}</td><td>${esc(f.well)}</td><td>${f.site ?? ''}</td><td>${esc(f.status)}</td><td>${f.n}</td><td>${f.fraction === null ? '' : `${(100 * f.fraction).toFixed(1)}%`}</td><td><b>${esc(f.reasons.replace(/;/g, ', '))}</b></td><td>${esc(f.details)}</td><td>${m ? `<a href="${esc(m)}">montage</a>` : ''}</td></tr>`;
    })
    .join('\n');
  const svgs = maps.filter((p) => p.endsWith('.svg'));
  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>qcbench qc apply: fields</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}img{max-width:100%}</style>
</head><body>
<h1>Fields</h1>
<p>${fields.length} field(s), ${flagged.length} flagged: ${[...counts].map(([r, n]) => `${esc(r)} ${n}`).join(', ') || 'none'}.
Reasons: unreadable, no_nuclei, no_crops (the crop pipeline), abnormal_crops (fraction of abnormal crops), focus_low,
saturated, dark, bright (a whole-field measure outside the screen's median ± k·MAD; see summary.json).</p>
${model ? `<p>Crops scored by the QC model ${esc(model.encoder)} / ${esc(model.task)}, abnormal above ${model.threshold}; abnormal means ${model.artefacts ? `<b>${esc(model.artefacts.join(', '))}</b> only (a detector of these artefact types)` : 'any artefact type'}.</p>` : ''}
${svgs.map((p) => `<p><img src="${esc(p)}" alt="${esc(p)}"></p>`).join('\n')}
<h2>Flagged fields</h2>
<table><thead><tr><th>field</th><th>plate</th><th>well</th><th>site</th><th>status</th><th>crops</th><th>abnormal</th><th>reasons</th><th>why</th><th></th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
  const file = join(out, 'fields.html');
  writeFileAtomic(file, html);
  return file;
}
