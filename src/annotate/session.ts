/**
 * One annotation session on a crop store: the labels so far (those of FILE when it exists, then each new one), kept
 * in the annotations format (annotations/README.md) and rewritten atomically after every change, so the file on
 * disk always holds every label the page has shown as saved.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  ANNOTATION_ARTEFACT_TYPES,
  type Annotation,
  formatAnnotations,
  type Label,
  PAPER_SAMPLING,
  parseAnnotations,
} from '../data/annotations.js';
import { type CropStore, findCrops } from '../data/store/crop-store.js';
import { QcbError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';

/** The paper's target counts (§3.1): 240 abnormal + 240 normal crops. */
export const TARGETS = { abnormal: PAPER_SAMPLING.abnormal, normal: PAPER_SAMPLING.normal } as const;

/** What the page shows as progress. */
export interface Counts {
  normal: number;
  abnormal: number;
  /** Abnormal crops per artefact type (every type of annotations/README.md, 0 when none). */
  byType: Record<string, number>;
  skipped: number;
  targets: typeof TARGETS;
}

type Step = { kind: 'label'; index: number; prev: Annotation | undefined } | { kind: 'skip'; index: number };

const OWN_COMMENT = /^# ?(labelled with qcbench annotate|split is a placeholder)/;

/**
 * The labels of one store in one file. Crops are store indices; rows keep the crop id, split and source they were
 * read with (a hand-written file may name a crop by a centre a few pixels off, see findCrops).
 */
export class AnnotationSession {
  /** Store index → its row. */
  readonly rows = new Map<number, Annotation>();
  readonly skipped = new Set<number>();
  private readonly history: Step[] = [];
  private readonly comments: string[];

  private constructor(
    readonly store: CropStore,
    readonly file: string,
    readonly source: string,
    comments: string[],
  ) {
    this.comments = [
      ...comments,
      `labelled with qcbench annotate on crop store ${store.path} (content hash ${store.hash.slice(0, 12)})`,
      'split is a placeholder (train) until `qcbench annotations split` assigns train/test',
    ];
  }

  /**
   * Opens FILE for `store`: its labels when it exists (every crop id must be a crop of the store), else empty. Never
   * writes: FILE is first written at the first label.
   * @throws QCB_ANNOTATIONS naming FILE when it is malformed or names crops the store lacks; QCB_USAGE when it is a
   *   folder
   */
  static open(store: CropStore, file: string, source: string): AnnotationSession {
    file = resolve(file);
    if (existsSync(file) && statSync(file).isDirectory()) {
      throw new QcbError('QCB_USAGE', `--out ${file} is a folder`, {
        file,
        key: '--out',
        fix: 'give a file for the labels, e.g. --out annotations/my-screen.csv',
      });
    }
    if (!/^[A-Za-z0-9_.-]+(:[^\s,]+)?$/.test(source)) {
      throw new QcbError('QCB_USAGE', `bad annotator '${source}'`, {
        key: '--annotator',
        value: source,
        allowed: 'letters, digits, _ . - (no spaces or commas)',
        fix: 'e.g. --annotator jdoe',
      });
    }
    if (!existsSync(file)) return new AnnotationSession(store, file, source, []);
    const text = readFileSync(file, 'utf8');
    const comments = text
      .split(/\r?\n/)
      .filter((l) => l.startsWith('#') && !OWN_COMMENT.test(l))
      .map((l) => l.replace(/^# ?/, ''));
    const s = new AnnotationSession(store, file, source, comments);
    const body = text.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
    if (body.length <= 1 && body[0]?.startsWith('crop_id')) return s; // a header only: every label was undone
    const rows = parseAnnotations(text, file);
    const idx = findCrops(
      store.meta,
      rows.map((r) => r.crop_id),
    );
    const missing = rows.filter((_, i) => idx[i] < 0).map((r) => r.crop_id);
    if (missing.length) {
      throw new QcbError(
        'QCB_ANNOTATIONS',
        `${file}: ${missing.length} of its ${rows.length} crop ids are not crops of the store ${store.path}`,
        {
          file,
          key: 'crop_id',
          value: missing.slice(0, 5),
          allowed: `crop ids of ${store.path}/crops.csv`,
          fix: 'this file labels another store: pass that store, or choose a new --out file for this one',
        },
      );
    }
    rows.forEach((r, i) => {
      s.rows.set(idx[i], r);
    });
    return s;
  }

  counts(): Counts {
    const byType: Record<string, number> = Object.fromEntries(ANNOTATION_ARTEFACT_TYPES.map((t) => [t, 0]));
    let normal = 0;
    let abnormal = 0;
    for (const r of this.rows.values()) {
      if (r.label === 'normal') normal++;
      else {
        abnormal++;
        byType[r.artefact_type] = (byType[r.artefact_type] ?? 0) + 1;
      }
    }
    return { normal, abnormal, byType, skipped: this.skipped.size, targets: TARGETS };
  }

  /** Labels of the store's crops (index → label), for the proposer. */
  labelMap(): Map<number, Label> {
    return new Map([...this.rows].map(([i, r]) => [i, r.label]));
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.store.count) {
      throw new QcbError('QCB_USAGE', `crop index ${index} is not in the store`, {
        key: 'index',
        value: index,
        allowed: `0 … ${this.store.count - 1}`,
        fix: 'reload the page',
      });
    }
  }

  /**
   * Labels crop `index` (or changes its label) and rewrites FILE atomically before returning.
   * @throws QCB_USAGE for an unknown label or artefact type (nothing is written)
   */
  label(index: number, label: string, artefactType = label === 'normal' ? 'none' : 'other'): void {
    this.checkIndex(index);
    if (label !== 'normal' && label !== 'abnormal') {
      throw new QcbError('QCB_USAGE', `bad label '${label}'`, {
        key: 'label',
        value: label,
        allowed: 'normal, abnormal',
        fix: 'send normal or abnormal',
      });
    }
    if (label === 'normal') artefactType = 'none';
    else if (!ANNOTATION_ARTEFACT_TYPES.includes(artefactType)) {
      throw new QcbError('QCB_USAGE', `bad artefact type '${artefactType}'`, {
        key: 'artefact_type',
        value: artefactType,
        allowed: ANNOTATION_ARTEFACT_TYPES.join(', '),
        fix: 'send one of the artefact types of annotations/README.md',
      });
    }
    const prev = this.rows.get(index);
    const row: Annotation = {
      crop_id: prev?.crop_id ?? this.store.meta[index].crop_id,
      label: label as Label,
      artefact_type: artefactType,
      split: prev?.split ?? 'train',
      source: this.source,
    };
    this.rows.set(index, row);
    try {
      this.save();
    } catch (e) {
      if (prev) this.rows.set(index, prev);
      else this.rows.delete(index);
      throw e;
    }
    this.skipped.delete(index);
    this.history.push({ kind: 'label', index, prev });
  }

  /** Skips crop `index` for this session (not written: a restarted session may propose it again). */
  skip(index: number): void {
    this.checkIndex(index);
    this.skipped.add(index);
    this.history.push({ kind: 'skip', index });
  }

  /**
   * Undoes this session's last label or skip (a relabel returns to the previous label) and rewrites FILE.
   * @returns the crop index undone, or undefined when there is nothing to undo
   */
  undo(): number | undefined {
    const step = this.history.pop();
    if (!step) return undefined;
    if (step.kind === 'skip') {
      this.skipped.delete(step.index);
      return step.index;
    }
    const cur = this.rows.get(step.index);
    if (step.prev) this.rows.set(step.index, step.prev);
    else this.rows.delete(step.index);
    try {
      this.save();
    } catch (e) {
      if (cur) this.rows.set(step.index, cur);
      this.history.push(step);
      throw e;
    }
    return step.index;
  }

  /** Rewrites FILE (temp file, fsync, rename): a reader sees the old or the new file, never a half-written one. */
  private save(): void {
    writeFileAtomic(this.file, formatAnnotations([...this.rows.values()], this.comments));
  }
}
