/** Text and attribute values escaped for HTML (&, <, >, "): one rule for every page qcbench writes. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
