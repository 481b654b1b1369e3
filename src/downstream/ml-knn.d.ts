/** Types for `ml-knn` 3 (the package ships none). Only what qcbench uses. */
declare module 'ml-knn' {
  /** The k-d tree ml-knn builds; each stored point is the feature row with the label appended. */
  export interface KnnKDTree {
    /** Up to `maxNodes` nearest stored points with their distances, in no particular order. */
    nearest(point: number[], maxNodes: number, maxDistance?: number): [number[], number][];
  }
  export interface KnnOptions {
    /** Number of neighbours (default: number of classes + 1). */
    k?: number;
    /** Distance between two rows (default Euclidean). */
    distance?: (a: number[], b: number[]) => number;
  }
  export default class KNN {
    constructor(dataset: number[][], labels: (number | string)[], options?: KnnOptions);
    kdTree: KnnKDTree;
    k: number;
    classes: Set<number | string>;
    /** Majority vote of the k nearest neighbours for each row. */
    predict(dataset: number[][]): (number | string)[];
    toJSON(): Record<string, unknown>;
  }
}
